import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { open, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { ChunkReader } from '../../src/blob/chunk-reader.js';
import { blobKey } from '../../src/blob/blob-key.js';
import { BlockStore } from '../../src/cache/block-store.js';
import { DATA_OFFSET, decodeHeader } from '../../src/cache/segment-file.js';
import { CountingUpstream } from '../helpers/fake-upstream.js';
import { patternBytes } from '../helpers/images.js';
import { tempDir } from '../helpers/tmp.js';

const run = promisify(execFile);
const KiB = 1 << 10;
const MiB = 1 << 20;
const cleanups: (() => Promise<void>)[] = [];
after(async () => {
  // Stores close before their dirs are removed (a closing store may still be writing).
  for (const c of cleanups.reverse()) await c();
});

async function setup(opts: { maxBytes?: number; blockSize?: number; segmentBlocks?: number; dir?: string } = {}) {
  let dir = opts.dir;
  if (!dir) {
    const t = await tempDir('cache');
    cleanups.push(t.cleanup);
    dir = t.path;
  }
  const store = await BlockStore.open({ dir, maxBytes: opts.maxBytes ?? 1 << 30, blockSize: opts.blockSize ?? MiB, segmentBlocks: opts.segmentBlocks, lock: true });
  cleanups.push(() => store.close());
  const upstream = new CountingUpstream();
  const reader = new ChunkReader(store, upstream, { maxRequestBytes: 16 * MiB, globalConcurrency: 8, perBlobConcurrency: 4 });
  return { dir, store, upstream, reader };
}

/** Flips one byte of a file at `pos`. */
async function flip(path: string, pos: number): Promise<void> {
  const fh = await open(path, 'r+');
  const b = Buffer.alloc(1);
  await fh.read(b, 0, 1, pos);
  b[0]! ^= 0xff;
  await fh.write(b, 0, 1, pos);
  await fh.close();
}

test('32 concurrent reads of one missing block make 1 range request', async () => {
  const { upstream, reader } = await setup();
  const data = patternBytes(4 * MiB, 1);
  const d = upstream.add(data);
  upstream.delayMs = 20;
  const bufs = await Promise.all(
    Array.from({ length: 32 }, async (_v, i) => {
      const b = Buffer.alloc(1000);
      await reader.readAt(d, MiB + i * 100, b);
      return b.equals(data.subarray(MiB + i * 100, MiB + i * 100 + 1000));
    }),
  );
  assert.deepEqual(bufs.filter((ok) => !ok), []);
  assert.equal(upstream.requests.length, 1);
  assert.deepEqual(upstream.requests[0], { digest: d, offset: MiB, length: MiB });
});

test('a cold 4 KiB read with 64 KiB blocks fetches exactly the one aligned 64 KiB block', async () => {
  const { upstream, reader } = await setup({ blockSize: 64 * KiB });
  const data = patternBytes(8 * MiB, 21);
  const d = upstream.add(data);
  const b = Buffer.alloc(4 * KiB);
  assert.equal(await reader.readAt(d, 3 * MiB + 70 * KiB, b), 4 * KiB);
  assert.ok(b.equals(data.subarray(3 * MiB + 70 * KiB, 3 * MiB + 74 * KiB)));
  assert.deepEqual(upstream.requests, [{ digest: d, offset: 3 * MiB + 64 * KiB, length: 64 * KiB }]);
  assert.equal(reader.counters.bytesFetched, 64 * KiB);
});

test('one 8 MiB aligned read of a cold blob makes 1 range request, not 8', async () => {
  const { upstream, reader } = await setup();
  const data = patternBytes(20 * MiB, 2);
  const d = upstream.add(data);
  const b = Buffer.alloc(8 * MiB);
  assert.equal(await reader.readAt(d, 4 * MiB, b), 8 * MiB);
  assert.ok(b.equals(data.subarray(4 * MiB, 12 * MiB)));
  assert.deepEqual(upstream.requests, [{ digest: d, offset: 4 * MiB, length: 8 * MiB }]);
  assert.equal(reader.counters.coalescedRequests, 1);
  // Partly cached: only the missing run is fetched.
  const b2 = Buffer.alloc(4 * MiB);
  assert.equal(await reader.readAt(d, 10 * MiB, b2), 4 * MiB);
  assert.ok(b2.equals(data.subarray(10 * MiB, 14 * MiB)));
  assert.deepEqual(upstream.requests[1], { digest: d, offset: 12 * MiB, length: 2 * MiB });
});

test('a read past a 16 MiB span splits into bounded requests', async () => {
  const { upstream, reader } = await setup();
  const data = patternBytes(40 * MiB, 3);
  const d = upstream.add(data);
  const b = Buffer.alloc(40 * MiB);
  assert.equal(await reader.readAt(d, 0, b), 40 * MiB);
  assert.ok(b.equals(data));
  assert.deepEqual(upstream.requests.map((r) => r.length), [16 * MiB, 16 * MiB, 8 * MiB]);
});

test('cache limit 8 MiB, 100 MiB read in 1 MiB segments: disk usage stays bounded and recent blocks still hit', async () => {
  const { dir, store, upstream, reader } = await setup({ maxBytes: 8 * MiB, segmentBlocks: 1 });
  const data = patternBytes(100 * MiB, 4);
  const d = upstream.add(data);
  const b = Buffer.alloc(MiB);
  for (let off = 0; off < data.length; off += MiB) {
    await reader.readAt(d, off, b);
    assert.ok(b.equals(data.subarray(off, off + MiB)));
  }
  await reader.flush();
  const { stdout } = await run('du', ['-sb', join(dir, 'blobs')]);
  const du = Number(stdout.split('\t')[0]);
  assert.ok(du <= 8 * MiB + 64 * KiB, `du ${du}`);
  assert.ok(store.size <= 8 * MiB, `accounted ${store.size}`);
  // 8 MiB holds 7 segments of 1 MiB + their 8 KiB headers: 93 of the 100 were evicted.
  assert.equal(store.counters.evictions, 93);
  const before = upstream.requests.length;
  await reader.readAt(d, 99 * MiB, b);
  await reader.readAt(d, 95 * MiB, b);
  assert.equal(upstream.requests.length, before, 'the last blocks read are still cached');
  await reader.readAt(d, 0, b);
  assert.equal(upstream.requests.length, before + 1, 'the first block was evicted');
});

test('present-block record: blocks 0 and 2 written, 1 not; the header on disk says so, and a read over 1 is a miss', async () => {
  const { store } = await setup({ blockSize: 64 * KiB });
  const key = 'sha256-' + 'ab'.repeat(32);
  const data = patternBytes(3 * 64 * KiB, 22);
  await store.write(key, data.length, 0, data.subarray(0, 64 * KiB));
  await store.write(key, data.length, 128 * KiB, data.subarray(128 * KiB));
  assert.deepEqual([0, 1, 2].map((b) => store.hasBlock(key, b)), [true, false, true]);
  const h = decodeHeader(store.geometry, await readFile(store.pathOf(key, 0)));
  assert.ok(!('invalid' in h));
  assert.deepEqual([...h.present.subarray(0, 4)], [1, 0, 1, 0]);
  assert.equal(h.blobSize, 3 * 64 * KiB);
  assert.equal(await store.read(key, 60 * KiB, Buffer.alloc(8 * KiB)), false, 'spans the missing block');
  const b = Buffer.alloc(64 * KiB);
  assert.equal(await store.read(key, 128 * KiB, b), true);
  assert.ok(b.equals(data.subarray(128 * KiB)));
  // Sparse: the absent block takes no disk space.
  assert.ok((await stat(store.pathOf(key, 0))).blocks * 512 <= DATA_OFFSET + 2 * 64 * KiB + 8 * KiB);
});

test('a flipped byte in a stored block is found on the first read after a restart: correct bytes, 1 corruption, 1 refetch, verify clean after', async () => {
  const first = await setup();
  const data = patternBytes(3 * MiB, 5);
  const d = first.upstream.add(data);
  await first.reader.readAt(d, 0, Buffer.alloc(3 * MiB));
  await first.reader.flush();
  await first.store.close();
  await flip(first.store.pathOf(blobKey(d), 0), DATA_OFFSET + MiB + 12345);
  const second = await setup({ dir: first.dir });
  second.upstream.add(data);
  const b = Buffer.alloc(MiB);
  await second.reader.readAt(d, MiB, b);
  assert.ok(b.equals(data.subarray(MiB, 2 * MiB)));
  assert.equal(second.store.counters.corruptions, 1);
  assert.deepEqual(second.upstream.requests, [{ digest: d, offset: MiB, length: MiB }]);
  await second.reader.flush();
  // Blocks 0 and 2 are checked once, on this first read; they were fine.
  await second.reader.readAt(d, 0, Buffer.alloc(3 * MiB));
  assert.equal(second.store.counters.corruptions, 1);
  assert.equal(second.upstream.requests.length, 1);
  assert.deepEqual(await second.store.verifyAll(), { checked: 3, bad: [] });
});

test('restart: the record is rebuilt from disk, cached reads make zero upstream requests, unusable files are removed', async () => {
  const first = await setup();
  const data = patternBytes(5 * MiB + 123, 6);
  const d = first.upstream.add(data);
  await first.reader.readAt(d, 0, Buffer.alloc(data.length));
  await first.reader.flush();
  await first.store.close();
  // A file that is not a segment (a torn header) is removed at start.
  const junk = first.store.pathOf(blobKey(d), 7);
  await writeFile(junk, 'partial');
  const second = await setup({ dir: first.dir });
  second.upstream.failWith = new Error('registry is down');
  const b = Buffer.alloc(data.length);
  assert.equal(await second.reader.readAt(d, 0, b), data.length);
  assert.ok(b.equals(data));
  assert.equal(second.upstream.requests.length, 0);
  assert.equal(second.upstream.sizeCalls, 0, 'the size came from the cache too');
  assert.deepEqual(await readdir(join(junk, '..')), [`${blobKey(d)}.0`]);
});

test('a blob whose bytes do not match its digest is purged once complete', async () => {
  const { store, upstream, reader } = await setup();
  const data = patternBytes(2 * MiB, 7);
  const d = upstream.add(data);
  upstream.blobs.set(d, patternBytes(2 * MiB, 8)); // the "registry" now serves other bytes
  await reader.readAt(d, 0, Buffer.alloc(2 * MiB));
  await reader.flush();
  assert.equal(reader.counters.blobsPurged, 1);
  assert.equal(store.hasBlock(blobKey(d), 0), false);
  assert.equal(store.hasBlock(blobKey(d), 1), false);
});

test('a correct blob is verified once and stays marked after a restart', async () => {
  const { dir, store, upstream, reader } = await setup();
  const d = upstream.add(patternBytes(3 * MiB + 7, 9));
  await reader.readAt(d, 0, Buffer.alloc(3 * MiB + 7));
  await reader.flush();
  assert.equal(reader.counters.blobsVerified, 1);
  assert.equal(reader.counters.blobsPurged, 0);
  await store.close();
  const again = await setup({ dir });
  assert.equal(again.store.isVerified(blobKey(d)), true);
  assert.deepEqual(again.store.stats(), { sizeBytes: DATA_OFFSET + 4 * MiB, blobs: 1, segments: 1, blocks: 4, fullyCachedBlobs: 1, verifiedBlobs: 1 });
});

test('files are 0600 and dirs 0700', async () => {
  const { dir, store, upstream, reader } = await setup();
  const d = upstream.add(patternBytes(MiB, 10));
  await reader.readAt(d, 0, Buffer.alloc(10));
  await reader.flush();
  const p = store.pathOf(blobKey(d), 0);
  assert.equal((await stat(p)).mode & 0o777, 0o600);
  assert.equal((await stat(join(dir, 'geometry'))).mode & 0o777, 0o600);
  assert.equal((await stat(join(p, '..'))).mode & 0o777, 0o700);
  assert.equal((await stat(join(dir, 'blobs'))).mode & 0o777, 0o700);
});

test('a second owner of the cache dir gets a clear error', async () => {
  const { dir } = await setup();
  await assert.rejects(BlockStore.open({ dir, maxBytes: MiB, lock: true }), (e: Error & { code: string }) => e.code === 'ERR_CACHE_LOCKED' && e.message.includes(String(process.pid)));
});

test('another block size starts the cache afresh; a reader without the lock keeps the recorded geometry', async () => {
  const first = await setup({ blockSize: MiB });
  const d = first.upstream.add(patternBytes(2 * MiB, 23));
  await first.reader.readAt(d, 0, Buffer.alloc(2 * MiB));
  await first.reader.flush();
  await first.store.close();
  const peek = await BlockStore.open({ dir: first.dir, maxBytes: 1 << 30, blockSize: 64 * KiB, lock: false });
  assert.equal(peek.blockSize, MiB);
  assert.equal(peek.stats().blocks, 2);
  await peek.close();
  const second = await setup({ dir: first.dir, blockSize: 64 * KiB });
  assert.equal(second.store.stats().blocks, 0);
  assert.deepEqual(JSON.parse(await readFile(join(first.dir, 'geometry'), 'utf8')), { blockSize: 64 * KiB, segmentBlocks: 1024 });
});

test('a cache dir deleted under the reader: network reads with exact bytes, recreated on the next write', async () => {
  // 1 MiB segments, so the second read writes a new file into the recreated dir.
  const { dir, store, upstream, reader } = await setup({ segmentBlocks: 1 });
  const data = patternBytes(4 * MiB, 12);
  const d = upstream.add(data);
  await rm(join(dir, 'blobs'), { recursive: true });
  const b = Buffer.alloc(MiB);
  await reader.readAt(d, 0, b);
  assert.ok(b.equals(data.subarray(0, MiB)));
  await reader.flush();
  await reader.readAt(d, MiB, b);
  await reader.flush();
  assert.ok(b.equals(data.subarray(MiB, 2 * MiB)));
  assert.equal((await stat(store.pathOf(blobKey(d), 1))).size, DATA_OFFSET + MiB, 'segment 1 (its one block) was written into the recreated dir');
});
