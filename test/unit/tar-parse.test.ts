import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { RegfsError } from '../../src/lib/errors.js';
import { readEntryBytes } from '../../src/image/entry-bytes.js';
import { TarFormatError } from '../../src/image/errors.js';
import { paxTimeMs, type TarEntry } from '../../src/image/tar-entry.js';
import { TarStreamParser } from '../../src/image/tar-stream.js';
import { archive, base256, gnuLong, header, member, pad, paxRecord } from '../helpers/tar-bytes.js';
import { tempDir } from '../helpers/tmp.js';

const run = promisify(execFile);

function parse(tar: Buffer, chunk = 7777): TarEntry[] {
  const p = new TarStreamParser();
  for (let i = 0; i < tar.length; i += chunk) p.push(tar.subarray(i, i + chunk));
  assert.equal(p.ended, true, 'the archive end was seen');
  return p.entries;
}

const reader = (tar: Buffer) => async (at: number, into: Uint8Array) => {
  const part = tar.subarray(at, at + into.length);
  into.set(part);
  return part.length;
};

/** `setcap cap_setuid,cap_setgid,cap_setfcap+ep`: VFS_CAP_REVISION_2|EFFECTIVE, permitted bits 6, 7, 31 (linux/capability.h). */
const CAPABILITY = Buffer.from('01000002c0000080000000000000000000000000', 'hex');
/** Two names that are not UTF-8 and would both decode to "caf\uFFFD". */
const LATIN1_NAME = Buffer.from('caf\xe9', 'latin1');
const OTHER_NAME = Buffer.from('caf\xff', 'latin1');

test('a security.capability xattr in PAX reaches the entry as its exact 20 bytes (0xc0 and 0x80 intact), user.* values with high bytes too', () => {
  const user = Buffer.from([0x00, 0xff, 0xfe, 0x80, 0x41, 0x0a, 0x3d]);
  const entries = parse(
    archive(
      member({ name: 'bin/ping', mode: 0o755 }, Buffer.from('ELF'), [paxRecord('SCHILY.xattr.security.capability', CAPABILITY), paxRecord('SCHILY.xattr.user.blob', user)]),
      member({ name: 'plain' }, Buffer.from('x')),
    ),
  );
  assert.equal(entries.length, 2);
  assert.deepEqual([...entries[0]!.xattrs!.keys()], ['security.capability', 'user.blob']);
  assert.equal(entries[0]!.xattrs!.get('security.capability')!.toString('hex'), CAPABILITY.toString('hex'));
  assert.equal(entries[0]!.xattrs!.get('user.blob')!.toString('hex'), '00fffe80410a3d');
  assert.equal(entries[1]!.xattrs, undefined, 'PAX records apply to one member only');
});

test('xattr names are bytes too, and a "__proto__" xattr is just a name', () => {
  const entries = parse(archive(member({ name: 'f' }, Buffer.from(''), [paxRecord(Buffer.concat([Buffer.from('SCHILY.xattr.user.'), LATIN1_NAME]), 'v'), paxRecord('SCHILY.xattr.__proto__', 'p')])));
  assert.deepEqual([...entries[0]!.xattrs!.keys()], ['user.caf\xe9', '__proto__']);
  assert.equal(Object.getPrototypeOf({}).polluted, undefined);
});

test('non-UTF-8 names and link targets stay bytes in ustar name+prefix, GNU L/K, PAX path/linkpath and hdrcharset=BINARY: 7 distinct byte names', () => {
  const longDir = Buffer.concat([Buffer.from('d'.repeat(120)), LATIN1_NAME]);
  const tar = archive(
    member({ name: LATIN1_NAME }, Buffer.from('1')),
    member({ name: OTHER_NAME }, Buffer.from('2')),
    member({ prefix: longDir, name: Buffer.concat([Buffer.from('in-prefix-'), OTHER_NAME]) }, Buffer.from('3')),
    gnuLong('L', Buffer.concat([Buffer.from('x'.repeat(150)), LATIN1_NAME])),
    gnuLong('K', Buffer.concat([Buffer.from('t'.repeat(150)), OTHER_NAME])),
    member({ name: 'ignored', typeflag: '2', magic: 'gnu' }),
    member({ name: 'ignored', typeflag: '2' }, Buffer.alloc(0), [paxRecord('path', Buffer.concat([Buffer.from('pax-'), LATIN1_NAME])), paxRecord('linkpath', OTHER_NAME)]),
    member({ name: 'ignored' }, Buffer.from('5'), [paxRecord('hdrcharset', 'BINARY'), paxRecord('path', Buffer.from([0x62, 0x69, 0x6e, 0xc3, 0x28]))]),
    member({ name: 'utf8' }, Buffer.from('6'), [paxRecord('path', Buffer.from('gr\u00fc\u00df', 'utf8'))]),
  );
  const entries = parse(tar, 512);
  assert.deepEqual(
    entries.map((e) => [Buffer.from(e.path, 'latin1').toString('hex'), Buffer.from(e.linkname, 'latin1').toString('hex')]),
    [
      [LATIN1_NAME.toString('hex'), ''],
      [OTHER_NAME.toString('hex'), ''],
      [Buffer.concat([longDir, Buffer.from('/in-prefix-'), OTHER_NAME]).toString('hex'), ''],
      [Buffer.concat([Buffer.from('x'.repeat(150)), LATIN1_NAME]).toString('hex'), Buffer.concat([Buffer.from('t'.repeat(150)), OTHER_NAME]).toString('hex')],
      [Buffer.from('pax-caf\xe9', 'latin1').toString('hex'), OTHER_NAME.toString('hex')],
      ['62696ec328', ''],
      [Buffer.from('gr\u00fc\u00df', 'utf8').toString('hex'), ''],
    ],
  );
  assert.equal(new Set(entries.map((e) => e.path)).size, 7);
});

test('times before 1970: base-256 -86400 s → -86400000 ms; PAX "-1.5" → -1500 ms, "-0.0001" → -1 ms, "1700000000.123456789" → 1700000000123 ms', () => {
  const tar = archive(
    member({ name: 'gnu-negative', mtime: -86400 }),
    member({ name: 'pax-negative' }, Buffer.alloc(0), [paxRecord('mtime', '-1.5')]),
    member({ name: 'pax-tiny' }, Buffer.alloc(0), [paxRecord('mtime', '-0.0001')]),
    member({ name: 'pax-fraction' }, Buffer.alloc(0), [paxRecord('mtime', '1700000000.123456789')]),
  );
  assert.deepEqual(
    parse(tar).map((e) => e.mtimeMs),
    [-86_400_000, -1500, -1, 1_700_000_000_123],
  );
  assert.equal(paxTimeMs(Buffer.from('12x')), undefined);
  const b = Buffer.alloc(12);
  base256(b, 0, 12, -1);
  assert.equal(b.toString('hex'), 'ffffffffffffffffffffffff');
});

test('PAX uid/gid/size override the header; a 9 GiB size in base-256 is read exactly', () => {
  const hdr = header({ name: 'big', size: 0 });
  base256(hdr, 124, 12, 9 * 1024 ** 3);
  hdr.fill(0x20, 148, 156);
  let sum = 0;
  for (const x of hdr) sum += x;
  hdr.write(sum.toString(8).padStart(6, '0') + '\0 ', 148, 'latin1');
  const p = new TarStreamParser();
  p.push(hdr);
  assert.equal(p.entries[0]!.size, 9 * 1024 ** 3);
  assert.equal(p.skippable, 9 * 1024 ** 3);
  const e = parse(archive(member({ name: 'ids', uid: 1, gid: 2 }, Buffer.from('abc'), [paxRecord('uid', '4294967296'), paxRecord('gid', '70000')])));
  assert.deepEqual([e[0]!.uid, e[0]!.gid, e[0]!.size], [4294967296, 70000, 3]);
});

test('a malformed PAX record is a TarFormatError with code ERR_TAR_FORMAT, a RegfsError', () => {
  const bad = archive(member({ name: 'f' }, Buffer.alloc(0), [Buffer.from('99 path=x\n')]));
  assert.throws(
    () => parse(bad),
    (e: unknown) => e instanceof TarFormatError && e instanceof RegfsError && e.code === 'ERR_TAR_FORMAT',
  );
});

test('GNU tar --sparse --format=pax 0.0, 0.1 and 1.0: a 10 MiB file with 2 data runs reads back byte for byte, holes as zeros', async () => {
  const dir = await tempDir('unit-sparse');
  try {
    const file = join(dir.path, 'sp');
    await run('truncate', ['-s', '10M', file]);
    await run('sh', ['-c', `printf hello | dd of=${file} bs=1 seek=3000000 conv=notrunc status=none; printf end | dd of=${file} bs=1 seek=10485757 conv=notrunc status=none`]);
    const want = await readFile(file);
    for (const v of ['0.0', '0.1', '1.0']) {
      const out = join(dir.path, `s${v}.tar`);
      await run('tar', ['--format=pax', '--sparse', `--sparse-version=${v}`, '-C', dir.path, '-cf', out, 'sp']);
      const tar = await readFile(out);
      const entries = parse(tar, 4096);
      assert.equal(entries.length, 1, v);
      const e = entries[0]!;
      assert.deepEqual([e.path, e.size, e.problem], ['sp', 10 * 1024 * 1024, undefined], v);
      assert.equal(e.sparse!.length, 2, `${v}: two data segments`);
      assert.ok(tar.length < 64 * 1024, `${v}: the tar holds only the data (${tar.length} bytes)`);
      const got = Buffer.alloc(want.length);
      // Odd-sized reads cross segment and hole boundaries.
      for (let off = 0; off < want.length; off += 131_071) await readEntryBytes(e, off, got.subarray(off, off + 131_071), reader(tar));
      assert.equal(got.equals(want), true, `${v}: contents`);
    }
  } finally {
    await dir.cleanup();
  }
});

test('old GNU sparse (type S) with an extension block: 6 segments read back, holes as zeros', () => {
  const segs = [0, 1000, 5000, 7000, 9000, 12000].map((o, i) => ({ offset: o * 10, length: 100 + i }));
  const entryBytes = (seg: { offset: number; length: number }): Buffer => {
    const b = Buffer.alloc(24);
    b.write(seg.offset.toString(8).padStart(11, '0') + '\0', 0, 'latin1');
    b.write(seg.length.toString(8).padStart(11, '0') + '\0', 12, 'latin1');
    return b;
  };
  const realSize = 130_000;
  const extra: [number, Buffer][] = segs.slice(0, 4).map((s, i) => [386 + i * 24, entryBytes(s)]);
  extra.push([482, Buffer.from([1])], [483, Buffer.from(realSize.toString(8).padStart(11, '0') + '\0', 'latin1')]);
  const ext = Buffer.alloc(512);
  segs.slice(4).forEach((s, i) => entryBytes(s).copy(ext, i * 24));
  const data = Buffer.concat(segs.map((s, i) => Buffer.alloc(s.length, 0x41 + i)));
  const tar = archive(Buffer.concat([header({ name: 'old-sparse', typeflag: 'S', magic: 'gnu', size: data.length, extra }), ext, pad(data)]), member({ name: 'after' }, Buffer.from('next')));
  const entries = parse(tar, 100);
  assert.deepEqual(entries.map((e) => [e.path, e.size]), [['old-sparse', realSize], ['after', 4]]);
  const want = Buffer.alloc(realSize);
  segs.forEach((s, i) => want.fill(0x41 + i, s.offset, s.offset + s.length));
  const got = Buffer.alloc(realSize);
  return readEntryBytes(entries[0]!, 0, got, reader(tar)).then(async (n) => {
    assert.equal(n, realSize);
    assert.equal(got.equals(want), true);
    const tail = Buffer.alloc(4);
    await readEntryBytes(entries[1]!, 0, tail, reader(tar));
    assert.equal(tail.toString(), 'next');
  });
});

test('a sparse map that does not fit its data fails only that entry: listed with a problem, reads throw ERR_TAR_ENTRY_UNREADABLE, the next member is intact', async () => {
  const tar = archive(
    member({ name: 'GNUSparseFile.1/bad' }, Buffer.from('abc'), [paxRecord('GNU.sparse.size', '100'), paxRecord('GNU.sparse.map', '0,50,60,10'), paxRecord('GNU.sparse.name', 'bad')]),
    member({ name: 'weird', typeflag: 'V' }, Buffer.from('label')),
    member({ name: 'ok' }, Buffer.from('fine')),
  );
  const entries = parse(tar);
  assert.deepEqual(entries.map((e) => [e.path, e.problem]), [
    ['bad', 'sparse map needs 60 stored bytes, the entry has 3'],
    ['weird', 'unsupported tar entry type "V"'],
    ['ok', undefined],
  ]);
  await assert.rejects(readEntryBytes(entries[0]!, 0, Buffer.alloc(10), reader(tar)), (e: RegfsError) => e.code === 'ERR_TAR_ENTRY_UNREADABLE');
  const ok = Buffer.alloc(4);
  await readEntryBytes(entries[2]!, 0, ok, reader(tar));
  assert.equal(ok.toString(), 'fine');
});

test('a PAX record split across push() calls and GNU long names of 1 KiB assemble the same as in one push', async () => {
  const long = Buffer.from('n/'.repeat(512));
  const tar = archive(gnuLong('L', long), member({ name: 'x' }, Buffer.from('data'), [paxRecord('SCHILY.xattr.user.k', Buffer.alloc(3000, 0xee))]));
  for (const chunk of [1, 13, 512, 100_000]) {
    const [e] = parse(tar, chunk);
    assert.equal(e!.path, long.toString('latin1').replace(/\/$/, ''));
    assert.equal(e!.xattrs!.get('user.k')!.length, 3000);
  }
});

test('a PAX global header (type g) is parsed but changes no member, as Docker and containerd ignore it', () => {
  const g = Buffer.concat([paxRecord('SCHILY.xattr.user.g', 'global'), paxRecord('uid', '42'), paxRecord('comment', 'git archive')]);
  const tar = archive(Buffer.concat([header({ name: 'pax_global_header', typeflag: 'g', size: g.length }), pad(g)]), member({ name: 'f', uid: 7 }, Buffer.from('x')));
  const [e, ...rest] = parse(tar);
  assert.equal(rest.length, 0);
  assert.deepEqual([e!.path, e!.uid, e!.xattrs], ['f', 7, undefined]);
});
