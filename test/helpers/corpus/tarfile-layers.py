#!/usr/bin/env python3
"""Layers written by Python's tarfile: headers GNU tar will not write on request.

usage: tarfile-layers.py KIND OUT.tar [SALT]
  implied    entries below tmp/, home/user/, srv/, b/newdir/sub/ with no entries for those directories;
             pre-1970 times as a negative fractional PAX mtime and as GNU base-256
  whiteouts  etc/.wh.old, an opaque opt/app/ (.wh..wh..opq) with a new file, a whited-out and
             re-created directory
  order-x    order/f = "X"                       (SALT: a file that changes the layer digest)
  order-y    order/f = "Y" and a whiteout of order/g
  names      non-UTF-8 names and link targets in ustar name, ustar prefix, GNU long name/link ('L'/'K'),
             PAX path/linkpath with hdrcharset=BINARY; UTF-8 names in PAX; a binary xattr written
             through hdrcharset=BINARY; two names that both decode to "caf\\ufffd"
"""
import io
import sys
import tarfile

kind, out = sys.argv[1], sys.argv[2]
salt = sys.argv[3] if len(sys.argv) > 3 else ''
T = 981173106  # 2001-02-03 04:05:06 UTC


def b2s(b: bytes) -> str:
    """tarfile takes str; surrogateescape carries any byte through to the header unchanged."""
    return b.decode('utf-8', 'surrogateescape')


def open_tar(mode: str, fmt: int) -> tarfile.TarFile:
    return tarfile.open(out, mode, format=fmt, encoding='utf-8', errors='surrogateescape')


def add(t, name, data=b'', typ=tarfile.REGTYPE, linkname='', mode=0o644, uid=0, gid=0, mtime=T, pax=None):
    i = tarfile.TarInfo(b2s(name) if isinstance(name, bytes) else name)
    i.type, i.mode, i.uid, i.gid, i.mtime = typ, mode, uid, gid, mtime
    i.linkname = b2s(linkname) if isinstance(linkname, bytes) else linkname
    if pax:
        i.pax_headers = pax
    if typ == tarfile.REGTYPE:
        i.size = len(data)
        t.addfile(i, io.BytesIO(data))
    else:
        t.addfile(i)


if kind == 'implied':
    with open_tar('w', tarfile.PAX_FORMAT) as t:
        add(t, 'tmp/x', b'x')
        add(t, 'home/user/y', b'y', uid=1000, gid=1000, mode=0o600)
        add(t, 'srv/z', b'z', gid=50)
        add(t, 'b/newdir/sub/f', b'f')
        add(t, 'pax-1960', b'old', mtime=-300000000.5)
    with open_tar('a', tarfile.GNU_FORMAT) as t:
        add(t, 'gnu-1950', b'older', mtime=-631152000)
elif kind == 'whiteouts':
    with open_tar('w', tarfile.PAX_FORMAT) as t:
        add(t, 'etc/.wh.old')
        add(t, 'opt/app/.wh..wh..opq')
        add(t, 'opt/app/new', b'new')
        add(t, 'a/.wh.gone')
        add(t, 'a/gone/again', b're-created')
elif kind in ('order-x', 'order-y'):
    with open_tar('w', tarfile.PAX_FORMAT) as t:
        if kind == 'order-x':
            add(t, 'order/f', b'X')
            add(t, 'order/salt', salt.encode())
        else:
            add(t, 'order/f', b'Y')
            add(t, 'order/.wh.g')
elif kind == 'names':
    n = b'names/'
    with open_tar('w', tarfile.USTAR_FORMAT) as t:
        add(t, n, typ=tarfile.DIRTYPE, mode=0o755)
        add(t, n + b'caf\xe9', b'latin1 e-acute')
        add(t, n + b'caf\xff', b'0xff, same U+FFFD as the other')
        add(t, n + b'ustar-link', typ=tarfile.SYMTYPE, linkname=b'caf\xe9')
        add(t, n + b'p' * 90 + b'\xe9/in-prefix-\xff', b'prefix split')
    with open_tar('a', tarfile.GNU_FORMAT) as t:
        add(t, n + b'g' * 120 + b'\xe9', b'gnu long name')
        add(t, n + b'gnu-long-link', typ=tarfile.SYMTYPE, linkname=b'k' * 120 + b'\xfe')
        add(t, n + b'gnu-hardlink-\xfd', typ=tarfile.LNKTYPE, linkname=n + b'caf\xe9')
    with open_tar('a', tarfile.PAX_FORMAT) as t:
        add(t, n + b'pax-binary-\x80\x81', b'hdrcharset=BINARY path')
        add(t, n + b'pax-link', typ=tarfile.SYMTYPE, linkname=b'target-\xc0\xc1')
        add(t, n + 'pax-grüß-ü'.encode(), b'UTF-8 in PAX')
        add(t, n + b'pax-xattr', b'x', pax={'SCHILY.xattr.user.bin': b2s(b'\xff\x80\x00\x01')})
else:
    sys.exit(f'unknown layer kind {kind}')
