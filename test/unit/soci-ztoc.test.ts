import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { gunzipSync } from 'node:zlib';
import { parseDigest } from '../../src/lib/digest.js';
import { sha256Digest } from '../../src/lib/hash.js';
import { buildGzipIndex } from '../../src/image/gzip-index.js';
import { TarStreamParser } from '../../src/image/tar-stream.js';
import { buildZtoc } from '../../src/image/soci/build.js';
import { goTime, layoutFromZtoc, thinCheckpoints, ztocFromIndex } from '../../src/image/soci/convert.js';
import { ZtocError } from '../../src/image/soci/errors.js';
import { SociSpanReader } from '../../src/image/soci/span-reader.js';
import { decodeGzipZinfo, encodeGzipZinfo, encodeTarZinfo, decodeTarZinfo, spanRange } from '../../src/image/soci/zinfo.js';
import { decodeZtoc, encodeZtoc } from '../../src/image/soci/ztoc-codec.js';
import type { Ztoc } from '../../src/image/soci/ztoc.js';
import { tempDir } from '../helpers/tmp.js';

const run = promisify(execFile);
const D = parseDigest(`sha256:${'1'.repeat(64)}`);

function memReader(data: Buffer, counter?: { bytes: number }) {
  return async (offset: number, into: Uint8Array): Promise<number> => {
    const part = data.subarray(offset, offset + into.length);
    into.set(part);
    if (counter) counter.bytes += part.length;
    return part.length;
  };
}

function mapCache() {
  const m = new Map<string, Buffer>();
  return { get: (k: string) => m.get(k), set: (k: string, v: Buffer) => void m.set(k, v) };
}

test('gzip zinfo blob: 12-byte header, 32785 bytes per checkpoint, windows right-aligned, v1 blobs read with an implied first checkpoint', () => {
  const w = Buffer.alloc(100, 7);
  const blob = encodeGzipZinfo({ spanSize: 4 << 20, checkpoints: [{ in: 10, out: 0, bits: 0, window: Buffer.alloc(0) }, { in: 5000, out: 70000, bits: 3, window: w }] });
  assert.equal(blob.length, 12 + 2 * 32785);
  assert.deepEqual([...blob.subarray(0, 12)], [2, 0, 0, 0, 0, 0, 0x40, 0, 0, 0, 0, 0]);
  const p1 = 12 + 32785;
  assert.equal(blob.readBigInt64LE(12), 10n);
  assert.equal(blob.readBigInt64LE(p1), 5000n);
  assert.equal(blob.readBigInt64LE(p1 + 8), 70000n);
  assert.equal(blob[p1 + 16], 3);
  assert.ok(blob.subarray(p1 + 17, p1 + 17 + 32768 - 100).every((b) => b === 0));
  assert.ok(blob.subarray(p1 + 17 + 32768 - 100, p1 + 17 + 32768).equals(w));
  const back = decodeGzipZinfo(blob);
  assert.equal(back.spanSize, 4 << 20);
  assert.deepEqual(back.checkpoints.map((c) => [c.in, c.out, c.bits, c.window.length]), [[10, 0, 0, 32768], [5000, 70000, 3, 32768]]);
  // Version 1: the count says 2, the blob holds 1 (the first is implied at offset 10).
  const v1 = Buffer.concat([blob.subarray(0, 12), blob.subarray(p1)]);
  assert.deepEqual(decodeGzipZinfo(v1).checkpoints.map((c) => [c.in, c.out]), [[10, 0], [5000, 70000]]);
  assert.throws(() => decodeGzipZinfo(blob.subarray(0, blob.length - 1)), ZtocError);
  assert.deepEqual(decodeTarZinfo(encodeTarZinfo(4 << 20, 123456)), { spanSize: 4 << 20, size: 123456 });
});

test('zTOC flatbuffers: every field round-trips, byte names and binary PAX values exactly, and re-encoding gives the same bytes', () => {
  const z: Ztoc = {
    version: '0.9',
    buildToolIdentifier: 'regfs',
    compressedArchiveSize: 2 ** 40 + 3,
    uncompressedArchiveSize: 2 ** 41 + 5,
    entries: [
      { name: 'd\xff\xfe/', type: 'dir', offset: 512, size: 0, linkname: '', mode: 0o2755, uid: 4294967294, gid: 7, uname: 'r\xe9', gname: 'g', modTime: '2024-02-03T04:05:06.789Z', devmajor: 0, devminor: 0, pax: new Map([['SCHILY.xattr.user.k\x80', Buffer.from([0, 1, 255, 0])], ['mtime', Buffer.from('1.5')]]) },
      { name: 'd\xff\xfe/l', type: 'symlink', offset: 1024, size: 0, linkname: '../t\xc0', mode: 0o777, uid: 0, gid: 0, uname: '', gname: '', modTime: '1960-01-01T00:00:00Z', devmajor: 0, devminor: 0, pax: new Map() },
      { name: 'dev/c', type: 'char', offset: 1536, size: 0, linkname: '', mode: 0o600, uid: 0, gid: 0, uname: '', gname: '', modTime: '2024-01-01T00:00:00Z', devmajor: 4, devminor: 64, pax: new Map() },
      { name: 'f', type: 'reg', offset: 2048, size: 9, linkname: '', mode: 0o644, uid: 1, gid: 1, uname: '', gname: '', modTime: '2024-01-01T00:00:00Z', devmajor: 0, devminor: 0, pax: new Map() },
      { name: 'h', type: 'hardlink', offset: 3072, size: 0, linkname: 'f', mode: 0o644, uid: 1, gid: 1, uname: '', gname: '', modTime: '2024-01-01T00:00:00Z', devmajor: 0, devminor: 0, pax: new Map() },
    ],
    compression: { algorithm: 'uncompressed', maxSpanId: 1, spanDigests: [sha256Digest('a'), sha256Digest('b')], checkpoints: encodeTarZinfo(1 << 20, 2 << 20) },
  };
  const bytes = encodeZtoc(z);
  const back = decodeZtoc(bytes);
  assert.deepEqual(back, z);
  assert.ok(encodeZtoc(back).equals(bytes));
  // Truncations and garbage are ZtocErrors, never crashes.
  for (const cut of [0, 4, 16, bytes.length >> 1]) assert.throws(() => decodeZtoc(bytes.subarray(0, cut)), ZtocError, `cut at ${cut}`);
  assert.equal(goTime(Date.UTC(2024, 0, 1, 0, 0, 0, 120)), '2024-01-01T00:00:00.12Z');
  assert.equal(goTime(Date.UTC(2024, 0, 1)), '2024-01-01T00:00:00Z');
});

test('zTOC from a real gzip layer: every file of the TOC reads back byte-exact through verified spans; thinned to 256 KiB spans', async () => {
  const t = await tempDir('soci');
  try {
    const tgz = join(t.path, 'l.tgz');
    await run('tar', ['czf', tgz, '-C', '/usr/share', 'common-licenses', 'zoneinfo']);
    const gz = await readFile(tgz);
    const plain = gunzipSync(gz);
    const parser = new TarStreamParser();
    const gi = await buildGzipIndex(D, gz.length, memReader(gz), (c) => parser.push(c), { span: 64 * 1024 });
    const index = { format: 'gzip' as const, compressedSize: gz.length, uncompressedSize: gi.uncompressedSize, entries: parser.entries, checkpoints: gi.checkpoints };
    const { ztoc, bytes } = await buildZtoc(index, memReader(gz), 256 * 1024);
    const thinned = thinCheckpoints(gi.checkpoints, 256 * 1024);
    assert.equal(ztoc.compression.maxSpanId + 1, thinned.length);
    for (let i = 1; i < thinned.length; i++) assert.ok(thinned[i]!.out - thinned[i - 1]!.out > 256 * 1024);
    const layout = layoutFromZtoc(decodeZtoc(bytes), { digest: D, size: gz.length, format: 'gzip' });
    assert.deepEqual(layout.entries, index.entries.map((e) => ({ ...e, xattrs: e.xattrs, mtimeMs: Math.floor(e.mtimeMs / 1000) * 1000 + (e.mtimeMs % 1000) })));
    const counter = { bytes: 0 };
    const reader = new SociSpanReader(D, layout, memReader(gz, counter), mapCache());
    for (const e of layout.entries.filter((x) => x.type === 'file')) {
      const b = Buffer.alloc(e.size);
      assert.equal(await reader.read(e.dataOffset, b), e.size);
      assert.ok(b.equals(plain.subarray(e.dataOffset, e.dataOffset + e.size)), e.path);
    }
    const spanBytes = layout.checkpoints.reduce((n, _c, i) => {
      const r = spanRange(layout.checkpoints, i, gz.length);
      return n + r.end - r.start;
    }, 0);
    assert.equal(counter.bytes, spanBytes, 'each span fetched once');
    // A tampered span: its digest check refuses it.
    const bad = Buffer.from(gz);
    const mid = layout.checkpoints[2]!.in + 100;
    bad[mid] = bad[mid]! ^ 0xff;
    const r2 = new SociSpanReader(D, layout, memReader(bad), mapCache());
    await assert.rejects(r2.read(layout.checkpoints[2]!.out, Buffer.alloc(10)), (e: Error) => e instanceof ZtocError && /span 2 .* has digest/.test(e.message));
    // Checks against the layer.
    assert.throws(() => layoutFromZtoc(decodeZtoc(bytes), { digest: D, size: gz.length + 1, format: 'gzip' }), /blob of \d+ bytes; the layer has/);
    const z2 = decodeZtoc(bytes);
    const cps = decodeGzipZinfo(z2.compression.checkpoints).checkpoints;
    cps[cps.length - 1]!.in = gz.length + 10;
    z2.compression.checkpoints = encodeGzipZinfo({ spanSize: 256 * 1024, checkpoints: cps });
    assert.throws(() => layoutFromZtoc(z2, { digest: D, size: gz.length, format: 'gzip' }), /beyond the \d+-byte blob/);
  } finally {
    await t.cleanup();
  }
});

test('no zTOC for a layer with a sparse member or a member regfs refuses to serve: a TOC entry has one offset and size', () => {
  const base = { path: 'f', type: 'file' as const, mode: 0o644, uid: 0, gid: 0, size: 10, mtimeMs: 0, linkname: '', devmajor: 0, devminor: 0, dataOffset: 512 };
  const index = (e: object) => ({ format: 'tar' as const, compressedSize: 2048, uncompressedSize: 2048, entries: [{ ...base, ...e }], checkpoints: [] });
  const input = (e: object) => ({ index: index(e), checkpoints: [], spanSize: 1 << 20, spanDigests: [sha256Digest('x')], buildTool: 'regfs' });
  assert.throws(() => ztocFromIndex(input({ sparse: [{ offset: 0, length: 5 }] })), (e: Error) => e instanceof ZtocError && /"f" is a sparse file/.test(e.message));
  assert.throws(() => ztocFromIndex(input({ problem: 'unsupported tar entry type "S"' })), (e: Error) => e instanceof ZtocError && /"f" cannot be served/.test(e.message));
  assert.equal(ztocFromIndex(input({})).entries[0]!.name, 'f');
});
