#!/usr/bin/env bash
# Builds the reference eStargz converter (test/fixtures/estargz-convert) from Debian's
# stargz-snapshotter sources, in GOPATH mode, offline. usage: build-estargz-convert.sh OUT
set -euo pipefail
out=${1:?usage: build-estargz-convert.sh OUT}
here=$(cd "$(dirname "$0")/.." && pwd)
if ! command -v go >/dev/null || [ ! -d /usr/share/gocode/src/github.com/containerd/stargz-snapshotter/estargz ]; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends golang-go golang-github-containerd-stargz-snapshotter-dev >/dev/null
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/src/estargz-convert"
cp "$here/test/fixtures/estargz-convert/main.go" "$work/src/estargz-convert/"
GOPATH="$work:/usr/share/gocode" GO111MODULE=off GOCACHE="$work/cache" GOFLAGS= go build -o "$out" estargz-convert
