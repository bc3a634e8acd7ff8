import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { ReadOnlyFilesystem } from '../../src/fs/filesystem.js';
import { mountFuse } from '../../src/fs/fuse-adapter.js';
import { mountSession } from '../../src/fs/fuse-session.js';
import { bytesContent, makeDir, makeFile, type FsNode } from '../../src/fs/node.js';
import { byteName } from '../../src/lib/byte-name.js';
import { silentLogger } from '../../src/lib/logger.js';
import { tempDir, waitFor } from '../helpers/tmp.js';

const run = promisify(execFile);
const b = (...bytes: number[]): string => byteName(Buffer.from(bytes));
const ascii = (s: string): number[] => [...Buffer.from(s, 'latin1')];

// Names: every byte 0x80-0xff in one name; invalid UTF-8 (a lone 0xe9, 0xff 0xfe); a valid
// UTF-8 "é" (c3 a9), which must stay two bytes, not become the one byte e9.
const HIGH = b(...Array.from({ length: 128 }, (_, i) => 0x80 + i));
const LONE = b(...ascii('caf'), 0xe9);
const FFFE = b(0xff, 0xfe);
const E_UTF8 = b(0xc3, 0xa9);
const TARGET = b(...ascii('../'), 0xff, 0x80, ...ascii('/z'), 0xc0, 0xaf);
// security.capability, VFS_CAP_REVISION_2 with the effective flag: cap_setuid, cap_setgid,
// cap_setfcap in permitted (bits 7, 6, 31), so byte 7 is 0x80.
const CAP = Buffer.from('01000002' + 'c0000080' + '00000000' + '00000000' + '00000000', 'hex');
const ALL_BYTES = Buffer.from(Array.from({ length: 256 }, (_, i) => i));
const XNAME_HIGH = b(...ascii('user.'), 0xe9, 0xff);
// Enough names that the list is over 256 bytes: Python's first listxattr buffer must get ERANGE.
const MANY = Array.from({ length: 12 }, (_, i) => `user.padding-name-number-${String(i).padStart(2, '0')}`);
const MTIME_PRE1970_MS = -1500; // 1969-12-31T23:59:58.5Z
const MTIME_1901_MS = -2177452800000; // 1901-01-01T00:00:00Z

function tree(): FsNode {
  let ino = 1;
  const root = makeDir(ino++, { mode: 0o755 });
  const dir = makeDir(ino++, { mode: 0o750, mtimeMs: MTIME_1901_MS });
  root.children!.set(LONE, dir);
  dir.children!.set(FFFE, makeFile(ino++, bytesContent(Buffer.from('inside ff fe\n')), { mtimeMs: MTIME_PRE1970_MS }));
  root.children!.set(HIGH, makeFile(ino++, bytesContent(ALL_BYTES)));
  root.children!.set(E_UTF8, makeFile(ino++, bytesContent(Buffer.from('e acute\n'))));
  root.children!.set('link', { ino: ino++, kind: 'symlink', mode: 0o777, uid: 0, gid: 0, mtimeMs: MTIME_PRE1970_MS, nlink: 1, rdev: 0, size: 0, target: TARGET });
  const xattrs = new Map<string, Buffer>([
    ['security.capability', CAP],
    ['user.bin', ALL_BYTES],
    [XNAME_HIGH, Buffer.from([0x00, 0xff, 0x80, 0x0a])],
    ...MANY.map((n): [string, Buffer] => [n, Buffer.from(n)]),
  ]);
  root.children!.set('cap', makeFile(ino++, bytesContent(Buffer.from('capable\n')), { mode: 0o755, xattrs }));
  return root;
}

// Python with bytes paths: every name, target, xattr name and value comes back as hex.
const PROBE = String.raw`
import os, sys, json
root = sys.argv[1].encode()
out = {"names": {}, "lstat": {}, "xattrs": {}, "xlist": {}, "data": {}}
for d, dirs, files in os.walk(root):
    rel = os.path.relpath(d, root)
    out["names"][rel.hex()] = sorted(n.hex() for n in dirs + files)
    for n in dirs + files:
        p = os.path.join(d, n)
        st = os.lstat(p)
        key = os.path.relpath(p, root).hex()
        out["lstat"][key] = [st.st_mode, st.st_size, st.st_mtime_ns]
        if os.path.islink(p):
            out["readlink"] = os.readlink(p).hex()
        elif os.path.isfile(p):
            with open(p, "rb") as f:
                out["data"][key] = f.read().hex()
        names = os.listxattr(p, follow_symlinks=False)
        out["xlist"][key] = sorted(x.encode("utf-8", "surrogateescape").hex() for x in names)
        for x in names:
            out["xattrs"][key + ":" + x.encode("utf-8", "surrogateescape").hex()] = os.getxattr(p, x, follow_symlinks=False).hex()
print(json.dumps(out))
`;

const hex = (name: string): string => Buffer.from(name, 'latin1').toString('hex');

/** Mounts with the patched fuse-native (the default) or with regfs's own session (takeover-capable). */
async function mountWith(binding: string, fs: ReadOnlyFilesystem, mnt: string): Promise<() => Promise<void>> {
  if (binding === 'fuse-native') {
    const m = await mountFuse(fs, mnt, { readDeadlineMs: 10_000, allowOther: false, logger: silentLogger });
    return () => m.unmount();
  }
  const s = mountSession(fs, mnt, { readDeadlineMs: 10_000, cacheTtlS: 60, allowOther: false, logger: silentLogger });
  await waitFor('the session to answer', async () => (await run('stat', [mnt])).stdout !== '', 5000);
  return async () => {
    await run('fusermount', ['-u', '-z', mnt]);
    await s.closed;
  };
}

for (const binding of ['fuse-native', 'regfs session']) {
  test(`${binding}: names with bytes 0x80-0xff, invalid UTF-8, a non-UTF-8 link target, binary xattrs and pre-1970 mtimes cross the FUSE binding byte-exact`, async () => {
    const tmp = await tempDir('fuse-bytes');
    const mnt = join(tmp.path, 'mnt');
    await mkdir(mnt);
    const unmount = await mountWith(binding, new ReadOnlyFilesystem(tree()), mnt);
    try {
      const { stdout } = await run('python3', ['-c', PROBE, mnt], { maxBuffer: 1 << 22 });
      const got = JSON.parse(stdout) as {
        names: Record<string, string[]>;
        lstat: Record<string, [number, number, number]>;
        xattrs: Record<string, string>;
        xlist: Record<string, string[]>;
        data: Record<string, string>;
        readlink: string;
      };
      assert.deepEqual(got.names, {
        [hex('.')]: [LONE, HIGH, E_UTF8, 'cap', 'link'].map(hex).sort(),
        [hex(LONE)]: [hex(FFFE)],
      });
      assert.equal(got.readlink, hex(TARGET));
      const inLone = hex(`${LONE}/${FFFE}`);
      assert.deepEqual(got.lstat[hex('link')], [0o120777, TARGET.length, MTIME_PRE1970_MS * 1e6]);
      assert.deepEqual(got.lstat[inLone], [0o100444, 13, -1_500_000_000]);
      assert.deepEqual(got.lstat[hex(LONE)], [0o040750, 4096, MTIME_1901_MS * 1e6]);
      assert.equal(got.data[hex(HIGH)], ALL_BYTES.toString('hex'));
      assert.equal(got.data[hex(E_UTF8)], Buffer.from('e acute\n').toString('hex'));
      assert.equal(got.data[inLone], Buffer.from('inside ff fe\n').toString('hex'));
      assert.deepEqual(got.xlist[hex('cap')], ['security.capability', 'user.bin', XNAME_HIGH, ...MANY].map(hex).sort());
      assert.equal(got.xattrs[`${hex('cap')}:${hex('security.capability')}`], CAP.toString('hex'));
      assert.equal(got.xattrs[`${hex('cap')}:${hex('user.bin')}`], ALL_BYTES.toString('hex'));
      assert.equal(got.xattrs[`${hex('cap')}:${hex(XNAME_HIGH)}`], '00ff800a');
      assert.equal(Object.keys(got.xattrs).length, 3 + MANY.length);
      // What the kernel's capability code decodes from the blob (it parses it, it does not copy it).
      assert.equal((await run('getcap', [join(mnt, 'cap')])).stdout, `${join(mnt, 'cap')} cap_setgid,cap_setuid,cap_setfcap=ep\n`);
    } finally {
      await unmount();
      await tmp.cleanup();
    }
  });
}
