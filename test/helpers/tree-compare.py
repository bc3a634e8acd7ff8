#!/usr/bin/env python3
"""Compares file trees the way a container sees them: the conformance check of regfs's image trees.

usage:
  tree-compare.py snapshot ROOT [--layout DIR --tag TAG]            print ROOT's snapshot as JSON
  tree-compare.py compare EXPECTED ACTUAL... [--layout DIR --tag TAG] print differences, exit 1 if any

EXPECTED is the ground truth (`umoci unpack`'s rootfs); each ACTUAL (regfs's rootfs/, a kernel
overlay of regfs's layers/) must equal it. The output of `compare` is one JSON object per ACTUAL:
{"actual": path, "entries": n, "diffs": [...]} ("entries" counts what was compared, so a check
that compared nothing is visible).

What is compared, for every path below ROOT and ROOT itself:
  * names as raw bytes (bytes paths end to end; shown as Python bytes literals);
  * file type; permission bits incl. setuid/setgid/sticky (mode & 0o7777); uid; gid;
  * mtime at millisecond resolution (st_mtime_ns floored to ms): FUSE attributes reach the kernel
    through fuse-native's stat array, which carries milliseconds; tar's sub-ms digits cannot;
  * regular files: size, nlink, SHA-256 of the content; symlinks: size and target bytes;
    devices: major and minor;
  * every xattr (llistxattr/lgetxattr, no symlink following), values as hex;
  * hardlink groups: the sets of paths that share one inode (non-directories).
What is not, and why:
  * atime/ctime: not image content (the unpacker's clock);
  * directory size and nlink: properties of the filesystem holding the tree (ext4, overlayfs, FUSE
    report different values for the same directory);
  * xattrs `trusted.overlay.*`: overlayfs's own namespace (regfs's layer form marks opaque
    directories with it; the kernel overlay consumes and hides it; it is not image content);
    `security.selinux`, `system.nfs4_acl`: umoci never applies them (host-specific labels), so
    the ground truth cannot hold them;
  * with --layout, the mtime of a directory that umoci stamps with the time of the unpack, which no
    image can reproduce (see stable_dirs): one no tar entry describes since it was (re)created (an
    implied parent with nothing below, a directory whited out and re-created implicitly, the root
    without a `./` entry), and one in which umoci had to create a missing directory (MkdirAll
    changes its mtime and umoci does not restore it). Mode, owner and xattrs are still compared.
    Without --layout every mtime is compared.
"""
import gzip
import hashlib
import json
import os
import stat
import sys
import tarfile

IGNORED_XATTR_PREFIXES = (b'trusted.overlay.',)
IGNORED_XATTRS = {b'security.selinux', b'system.nfs4_acl'}


def show(p: bytes) -> str:
    return repr(p)[1:] if p else "'.'"


def norm(name: str) -> bytes:
    """A tar member name → the path bytes relative to the root ('' for the root)."""
    b = name.encode('utf-8', 'surrogateescape')
    parts = [c for c in b.split(b'/') if c not in (b'', b'.')]
    return b'/'.join(parts)


def ancestors(p: bytes) -> list:
    """b'a/b/c' → [b'', b'a', b'a/b']."""
    parts = p.split(b'/')
    return [b'/'.join(parts[:i]) for i in range(len(parts))] if p else []


def stable_dirs(layout: str, tag: str) -> set:
    """
    Directories whose mtime umoci unpack takes from the image: replays the image's layers the way
    umoci's UnpackEntry does. A directory has the mtime of its tar entry, kept while entries are
    added below it (umoci restores the parent's metadata after each one), unless umoci had to
    create a missing directory inside it (MkdirAll, no restore: its mtime becomes the unpack's);
    a directory that no entry describes since it was (re)created has the unpack's time.
    """
    with open(os.path.join(layout, 'index.json'), 'rb') as f:
        index = json.load(f)
    desc = next((m for m in index['manifests'] if m.get('annotations', {}).get('org.opencontainers.image.ref.name') == tag), index['manifests'][0])

    def blob(d):
        return os.path.join(layout, 'blobs', *d.split(':', 1))

    with open(blob(desc['digest']), 'rb') as f:
        manifest = json.load(f)
    exists = {b''}
    stable = set()
    for layer in manifest['layers']:
        with open(blob(layer['digest']), 'rb') as raw:
            head = raw.read(2)
        opener = gzip.open if head == b'\x1f\x8b' else open
        written = set()

        def remove(p: bytes, keep_self: bool):
            prefix = p + b'/' if p else b''
            for d in [d for d in exists if (d.startswith(prefix) and d != p) or (d == p and not keep_self)]:
                if d not in written:
                    exists.discard(d)
                    stable.discard(d)

        with opener(blob(layer['digest']), 'rb') as stream:
            with tarfile.open(fileobj=stream, mode='r|', encoding='utf-8', errors='surrogateescape') as t:
                for m in t:
                    p = norm(m.name)
                    parent, _, base = p.rpartition(b'/')
                    if base == b'.wh..wh..opq':
                        remove(parent, True)
                        continue
                    if base.startswith(b'.wh.'):
                        remove((parent + b'/' if parent else b'') + base[4:], False)
                        continue
                    missing = [a for a in ancestors(p) if a not in exists]
                    if missing:
                        # MkdirAll: the deepest existing ancestor gets a new entry and today's mtime.
                        stable.discard(missing[0].rpartition(b'/')[0])
                        for a in missing:
                            exists.add(a)
                            stable.discard(a)
                    exists.add(p)
                    written.update(ancestors(p) + [p])
                    if m.isdir():
                        stable.add(p)
    return stable


def xattrs(path: bytes) -> dict:
    try:
        names = os.listxattr(path, follow_symlinks=False)
    except OSError:
        return {}
    out = {}
    for n in names:
        nb = n.encode('utf-8', 'surrogateescape') if isinstance(n, str) else n
        if nb in IGNORED_XATTRS or nb.startswith(IGNORED_XATTR_PREFIXES):
            continue
        try:
            v = os.getxattr(path, nb, follow_symlinks=False)
        except OSError as e:
            v = f'<error {e.errno}>'.encode()
        out[show(nb)] = v.hex()
    return out


def sha256(path: bytes) -> str:
    h = hashlib.sha256()
    with open(path, 'rb', buffering=0) as f:
        while True:
            b = f.read(1 << 20)
            if not b:
                return h.hexdigest()
            h.update(b)


def snapshot(root: bytes, listed) -> dict:
    entries = {}
    inodes = {}

    def visit(rel: bytes):
        p = os.path.join(root, rel) if rel else root
        st = os.lstat(p)
        fmt = stat.S_IFMT(st.st_mode)
        e = {
            'type': {stat.S_IFDIR: 'dir', stat.S_IFREG: 'file', stat.S_IFLNK: 'symlink', stat.S_IFCHR: 'chardev', stat.S_IFBLK: 'blockdev', stat.S_IFIFO: 'fifo', stat.S_IFSOCK: 'socket'}.get(fmt, oct(fmt)),
            'mode': oct(stat.S_IMODE(st.st_mode)),
            'uid': st.st_uid,
            'gid': st.st_gid,
            'mtime_ms': st.st_mtime_ns // 1_000_000,
            'xattrs': xattrs(p),
        }
        if fmt == stat.S_IFDIR and listed is not None and rel not in listed:
            del e['mtime_ms']
        if fmt == stat.S_IFREG:
            e['size'] = st.st_size
            e['nlink'] = st.st_nlink
            e['sha256'] = sha256(p)
        elif fmt == stat.S_IFLNK:
            e['size'] = st.st_size
            e['target'] = show(os.readlink(p))
        elif fmt in (stat.S_IFCHR, stat.S_IFBLK):
            e['rdev'] = [os.major(st.st_rdev), os.minor(st.st_rdev)]
        if fmt != stat.S_IFDIR:
            inodes.setdefault((st.st_dev, st.st_ino), []).append(show(rel))
        entries[show(rel)] = e
        if fmt == stat.S_IFDIR:
            for name in sorted(os.listdir(p)):
                visit(rel + b'/' + name if rel else name)

    visit(b'')
    groups = sorted(sorted(g) for g in inodes.values() if len(g) > 1)
    return {'entries': entries, 'hardlink_groups': groups}


def diff(expected: dict, actual: dict) -> list:
    out = []
    ee, ae = expected['entries'], actual['entries']
    for p, e in ee.items():
        a = ae.get(p)
        if a is None:
            out.append(f'missing: {p}')
            continue
        for k in sorted(set(e) | set(a)):
            if e.get(k) != a.get(k):
                out.append(f'{p}: {k}: expected {json.dumps(e.get(k))}, got {json.dumps(a.get(k))}')
    for p in ae:
        if p not in ee:
            out.append(f'unexpected: {p}')
    if expected['hardlink_groups'] != actual['hardlink_groups']:
        out.append(f"hardlink groups: expected {json.dumps(expected['hardlink_groups'])}, got {json.dumps(actual['hardlink_groups'])}")
    return out


def main(argv):
    layout = tag = None
    args = []
    i = 0
    while i < len(argv):
        if argv[i] == '--layout':
            layout = argv[i + 1]
            i += 2
        elif argv[i] == '--tag':
            tag = argv[i + 1]
            i += 2
        else:
            args.append(argv[i])
            i += 1
    if len(args) < 2 or args[0] not in ('snapshot', 'compare') or (args[0] == 'compare' and len(args) < 3):
        sys.stderr.write(__doc__)
        return 2
    listed = stable_dirs(layout, tag or 'latest') if layout else None
    roots = [os.fsencode(a) for a in args[1:]]
    if args[0] == 'snapshot':
        json.dump(snapshot(roots[0], listed), sys.stdout, indent=1, sort_keys=True)
        return 0
    expected = snapshot(roots[0], listed)
    failed = False
    for r in roots[1:]:
        d = diff(expected, snapshot(r, listed))
        failed = failed or bool(d)
        print(json.dumps({'actual': os.fsdecode(r), 'entries': len(expected['entries']), 'diffs': d}))
    return 1 if failed else 0


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))
