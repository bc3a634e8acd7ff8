#!/usr/bin/env bash
# Layers written by GNU tar, as users build them: --format=pax --xattrs --sparse.
#   gnu-tar-layers.sh base  OUT.tar   the base layer (dir metadata, xattrs, a setcap file, devices, ...)
#   gnu-tar-layers.sh sparse OUT.tar  sparse files in PAX 0.0, 0.1 and 1.0 form, one archive
#   gnu-tar-layers.sh oldgnu OUT.tar  a sparse file in the old GNU form (type 'S')
#   gnu-tar-layers.sh big   OUT.tar   one 5 GiB sparse file (PAX 1.0)
# Every mtime is set, so two runs give the same trees.
set -euo pipefail
kind=$1
out=$(realpath -m "$2")
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
T='2001-02-03 04:05:06.789'
pax() { tar --format=pax --xattrs --xattrs-include='*' --sparse --numeric-owner "$@"; }

# A sparse file: data at the given byte offsets (each "offset:text"), holes elsewhere.
sparse_file() {
  local path=$1 size=$2; shift 2
  truncate -s "$size" "$path"
  for part in "$@"; do
    printf '%s' "${part#*:}" | dd of="$path" bs=1 seek="${part%%:*}" conv=notrunc status=none
  done
}

case $kind in
base)
  r=root
  mkdir -p $r/tmp $r/home/user $r/srv $r/etc $r/opt/app/lib $r/a $r/b $r/dev $r/order $r/bin $r/a/gone
  chmod 1777 $r/tmp
  chown 1000:1000 $r/home/user && chmod 0700 $r/home/user
  chgrp 50 $r/srv && chmod 2775 $r/srv
  echo old >$r/etc/old
  echo keep >$r/etc/keep
  echo lib >$r/opt/app/lib/old.so
  echo g >$r/order/g
  echo x >$r/a/gone/x
  printf shared >$r/a/f && ln $r/a/f $r/b/hardlink
  printf '#!/bin/sh\n' >$r/bin/capped && chmod 0755 $r/bin/capped
  setcap cap_setuid,cap_setgid,cap_setfcap+ep $r/bin/capped
  python3 -c "import os; os.setxattr('$r/etc/keep', 'user.binary', bytes([0, 0xff, 0x80, 0xfe, 0x7f, 0x0a])); os.setxattr('$r/home/user', 'user.dir', b'\xc3\x28')"
  mknod $r/dev/null c 1 3 && mknod $r/dev/sda b 8 0 && mkfifo $r/fifo
  chmod 0666 $r/dev/null
  ln -s etc/keep $r/link
  printf 'setuid' >$r/bin/su && chmod 4755 $r/bin/su
  sparse_file $r/sparse10m 10485760 3000000:hello 10485757:end
  touch -d '1960-06-15 12:00:00.25' $r/etc/keep $r/fifo
  touch -h -d '1969-12-31 23:59:59.5' $r/link
  find $r -mindepth 1 -not -path $r/etc/keep -not -path $r/fifo -not -path $r/link -exec touch -h -d "$T" {} +
  chmod 0751 $r && touch -d '1999-09-09 09:09:09' $r
  pax -C $r -cf "$out" .
  ;;
sparse)
  mkdir s
  sparse_file s/v00 5242880 0:first 4194304:second
  sparse_file s/v01 5242880 1048576:one
  sparse_file s/v10 5242880 5242879:z
  touch -d "$T" s/* s
  tar --format=pax --sparse --sparse-version=0.0 --numeric-owner --no-recursion -cf "$out" s s/v00
  tar --format=pax --sparse --sparse-version=0.1 --numeric-owner -cf 01.tar s/v01
  tar --format=pax --sparse --sparse-version=1.0 --numeric-owner -cf 10.tar s/v10
  for t in 01.tar 10.tar; do tar -A -f "$out" "$t"; done
  ;;
oldgnu)
  # Kept apart: umoci 0.4.7 refuses type 'S' ("unknown typeflag"), so GNU tar is its reference.
  mkdir s
  sparse_file s/oldgnu 5242880 2097152:old-gnu 3145728:more
  touch -d "$T" s/oldgnu
  tar --format=gnu --sparse --numeric-owner -cf "$out" s/oldgnu
  ;;
big)
  sparse_file big5g 5368709120 0:start 2684354560:middle 5368709116:end
  touch -d "$T" big5g
  tar --format=pax --sparse --sparse-version=1.0 --numeric-owner -cf "$out" big5g
  ;;
*) echo "unknown layer kind $kind" >&2; exit 2 ;;
esac
