import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { randomInt } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { gunzipSync, gzipSync } from 'node:zlib';
import { parseDigest } from '../../src/lib/digest.js';
import { buildGzipIndex } from '../../src/image/gzip-index.js';
import { GzipRandomReader } from '../../src/image/gzip-reader.js';
import { TarStreamParser } from '../../src/image/tar-stream.js';
import { patternBytes } from '../helpers/images.js';
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

test('gzip index: tar entries and random reads equal gunzip output', async () => {
  const t = await tempDir('gz');
  try {
    const tgz = join(t.path, 'l.tgz');
    await run('tar', ['czf', tgz, '-C', '/usr/share', 'common-licenses', 'zoneinfo']);
    const gz = await readFile(tgz);
    const plain = gunzipSync(gz);
    const parser = new TarStreamParser();
    const index = await buildGzipIndex(D, gz.length, memReader(gz), (c) => parser.push(c), { span: 256 * 1024 });
    assert.equal(index.uncompressedSize, plain.length);
    assert.ok(index.checkpoints.length >= Math.floor(plain.length / (256 * 1024)) - 1, `${index.checkpoints.length} checkpoints`);
    const { stdout } = await run('tar', ['tf', tgz]);
    const names = stdout.trim().split('\n').map((n) => n.replace(/\/$/, ''));
    assert.deepEqual(parser.entries.map((e) => e.path), names);
    const reader = new GzipRandomReader(D, index, memReader(gz), mapCache());
    for (let i = 0; i < 300; i++) {
      const off = randomInt(0, plain.length);
      const len = randomInt(1, 300_000);
      const b = Buffer.alloc(len);
      const n = await reader.read(off, b);
      assert.equal(n, Math.min(len, plain.length - off));
      assert.ok(b.subarray(0, n).equals(plain.subarray(off, off + n)), `read ${off}+${len}`);
    }
    // A file's bytes through its entry offset.
    const e = parser.entries.find((x) => x.type === 'file' && x.size > 1000)!;
    const b = Buffer.alloc(e.size);
    await reader.read(e.dataOffset, b);
    assert.ok(b.equals(await readFile(join('/usr/share', e.path))));
  } finally {
    await t.cleanup();
  }
});

test('a random read fetches only its span of compressed bytes', async () => {
  const plain = Buffer.concat(Array.from({ length: 40 }, (_v, i) => Buffer.concat([patternBytes(100_000, i), Buffer.alloc(150_000, i)])));
  const gz = gzipSync(plain);
  const index = await buildGzipIndex(D, gz.length, memReader(gz), () => {}, { span: 1 << 20 });
  const counter = { bytes: 0 };
  const reader = new GzipRandomReader(D, index, memReader(gz, counter), mapCache());
  const off = 7_777_777;
  const b = Buffer.alloc(4096);
  await reader.read(off, b);
  assert.ok(b.equals(plain.subarray(off, off + 4096)));
  const i = index.checkpoints.findLastIndex((c) => c.out <= off);
  const span = reader.spanCompressedRange(i);
  assert.equal(counter.bytes, span.end - span.start);
  assert.ok(counter.bytes < gz.length / 4, `${counter.bytes} of ${gz.length}`);
});

test('concatenated gzip members are indexed and read across the boundary', async () => {
  const a = patternBytes(700_000, 1);
  const b = patternBytes(900_000, 2);
  const gz = Buffer.concat([gzipSync(a), gzipSync(b), Buffer.alloc(100)]);
  const index = await buildGzipIndex(D, gz.length, memReader(gz), () => {}, { span: 128 * 1024 });
  assert.equal(index.uncompressedSize, a.length + b.length);
  const reader = new GzipRandomReader(D, index, memReader(gz), mapCache());
  const buf = Buffer.alloc(200_000);
  await reader.read(a.length - 100_000, buf);
  assert.ok(buf.equals(Buffer.concat([a, b]).subarray(a.length - 100_000, a.length + 100_000)));
});

test('garbage, truncated, corrupted and bomb gzip streams are refused with clear errors', async () => {
  const good = gzipSync(patternBytes(500_000, 3));
  const cases: [Buffer, RegExp, number?][] = [
    [Buffer.from('definitely not gzip at all, sorry'), /not gzip data/],
    [good.subarray(0, good.length - 5000), /truncated/],
    [Buffer.concat([good.subarray(0, 2000), Buffer.alloc(100, 0xff), good.subarray(2100)]), /corrupt|mismatch/],
    [gzipSync(Buffer.alloc(50 << 20)), /expands beyond .* \(gzip bomb\?\)/, 10 << 20],
  ];
  for (const [data, re, max] of cases) {
    await assert.rejects(
      buildGzipIndex(D, data.length, memReader(data), () => {}, { span: 1 << 20, ...(max ? { maxOutput: max } : {}) }),
      (e: Error & { code?: string }) => e.code === 'ERR_LAYER_FORMAT' && re.test(e.message),
      String(re),
    );
  }
});
