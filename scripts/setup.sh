#!/usr/bin/env bash
# Installs what regfs needs to run and to be tested on Debian 12, then the npm dependencies.
# Idempotent: safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

PKGS=(
  libfuse2 fuse3            # fuse-native loads libfuse.so.2; fusermount comes from fuse3
  docker-registry           # the CNCF registry the tests and the demo run on loopback
  skopeo umoci              # build and push real images; unpack ground truth
  apache2-utils openssl     # htpasswd and the token service's certificate in the tests
  curl ca-certificates
  libcap2-bin               # setcap/getcap: the conformance corpus stores and checks a security.capability
  python3 make g++         # node-gyp builds the addons in native/ (zlib, zstd, sd_notify, fd passing, the patched fuse-native)
  libzstd-dev zstd         # native/zstd decodes zstd layers with libzstd; the tests compress with the zstd CLI
  golang-go golang-github-containerd-stargz-snapshotter-dev  # the reference eStargz converter the tests build
  nginx-light               # npm run bench: real blob storage behind the registry's redirect (a Node server caps at ~340 MB/s)
  rclone fio                # npm run bench: the peer FUSE reader (rclone mount) and the random-read tool
  podman runc               # e2e: podman 4.3 starts containers from `serve --layer-store` (crun fails on cgroup v1 hybrid hosts)
  bubblewrap                # e2e: the sandbox recipe (bwrap over <mnt>/rootfs and over an overlay of layers/)
)
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "setup: installing ${missing[*]}" >&2
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# The Debian package starts a registry on :5000 that nothing here needs.
if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet docker-registry 2>/dev/null; then
  $SUDO systemctl disable --now docker-registry >/dev/null 2>&1 || true
fi

if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm ci --no-audit --no-fund
fi
# Rebuild when any product of native/binding.gyp is missing (a checkout that predates a target).
for f in regfs_native.node regfs_zstd.node regfs_fuse.node fuse-native.cjs regfs_fd.node regfs-fd-holder; do
  [ -f "native/build/Release/$f" ] || { npm run build:native --silent; break; }
done
npm run build --silent
