#!/usr/bin/env bash
# Demo on a fresh machine: a loopback registry, a small real image built with umoci from files
# on this machine, pushed with skopeo, then mounted with regfs in the foreground.
# Ctrl-C unmounts and stops everything.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -f dist/cli/main.js ] || scripts/setup.sh

WORK=${REGFS_DEMO_DIR:-/tmp/regfs-demo}
PORT=${REGFS_DEMO_PORT:-5077}
METRICS=${REGFS_DEMO_METRICS:-127.0.0.1:9477}
REF=127.0.0.1:$PORT/demo/debian-bits:latest
mkdir -p "$WORK/storage" "$WORK/mnt"
fusermount -u -z "$WORK/mnt" 2>/dev/null || true

cat > "$WORK/registry.yml" <<YML
version: 0.1
log:
  level: warn
storage:
  filesystem:
    rootdirectory: $WORK/storage
http:
  addr: 127.0.0.1:$PORT
YML
docker-registry serve "$WORK/registry.yml" >"$WORK/registry.log" 2>&1 &
REG_PID=$!
trap 'kill $REG_PID 2>/dev/null || true' EXIT
for _ in $(seq 50); do curl -fs "http://127.0.0.1:$PORT/v2/" >/dev/null && break; sleep 0.1; done

echo "demo: building an image from local files with umoci" >&2
rm -rf "$WORK/layout" "$WORK/bundle"
umoci init --layout "$WORK/layout"
umoci new --image "$WORK/layout:latest"
umoci unpack --image "$WORK/layout:latest" "$WORK/bundle" >/dev/null
mkdir -p "$WORK/bundle/rootfs/usr/bin" "$WORK/bundle/rootfs/etc" "$WORK/bundle/rootfs/usr/share"
cp /usr/bin/bash "$WORK/bundle/rootfs/usr/bin/bash"
cp /etc/os-release "$WORK/bundle/rootfs/etc/os-release"
cp -r /usr/share/common-licenses "$WORK/bundle/rootfs/usr/share/"
umoci repack --image "$WORK/layout:latest" "$WORK/bundle" >/dev/null
rm -rf "$WORK/bundle"
skopeo copy --quiet --dest-tls-verify=false "oci:$WORK/layout:latest" "docker://$REF"

cat >&2 <<TXT

demo: mounting $REF at $WORK/mnt. In another terminal, try:
  ls -l $WORK/mnt $WORK/mnt/blobs
  cat $WORK/mnt/manifest.json
  ls -l $WORK/mnt/rootfs/usr/bin && $WORK/mnt/rootfs/usr/bin/bash -c 'echo hello from the image'
  cat $WORK/mnt/rootfs/etc/os-release
  sha256sum $WORK/mnt/blobs/*          # each blob hashes to its own name
  curl -s http://$METRICS/metrics | grep ^regfs_
  node dist/cli/main.js cache stats --cache-dir $WORK/cache
Stop with Ctrl-C (or: node dist/cli/main.js unmount $WORK/mnt).

TXT
node dist/cli/main.js mount "$REF" "$WORK/mnt" --cache-dir "$WORK/cache" --metrics "$METRICS" --log-level warn
