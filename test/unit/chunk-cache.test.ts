import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { ChunkReader } from '../../src/blob/chunk-reader.js';
import { chunkKey } from '../../src/blob/chunk-key.js';
import { DiskChunkStore } from '../../src/cache/disk-chunk-store.js';
import { CountingUpstream } from '../helpers/fake-upstream.js';
import { patternBytes } from '../helpers/images.js';
import { tempDir } from '../helpers/tmp.js';

const run = promisify(execFile);
const MiB = 1 << 20;
const cleanups: (() => Promise<void>)[] = [];
after(async () => {
  for (const c of cleanups) await c();
});

async function setup(opts: { maxBytes?: number; chunkSize?: number; dir?: string } = {}) {
  let dir = opts.dir;
  if (!dir) {
    const t = await tempDir('cache');
    cleanups.push(t.cleanup);
    dir = t.path;
  }
  const store = await DiskChunkStore.open({ dir, maxBytes: opts.maxBytes ?? 1 << 30, lock: true });
  cleanups.push(() => store.close());
  const upstream = new CountingUpstream();
  const reader = new ChunkReader(store, upstream, { chunkSize: opts.chunkSize ?? MiB, maxRequestBytes: 16 * MiB, globalConcurrency: 8, perBlobConcurrency: 4 });
  return { dir, store, upstream, reader };
}

test('32 concurrent reads of one missing chunk make 1 range request', async () => {
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
  assert.equal(await reader.readAt(d, 10 * MiB, Buffer.alloc(4 * MiB)), 4 * MiB);
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

test('cache limit 8 MiB, 100 MiB read: disk usage stays bounded and recent chunks still hit', async () => {
  const { dir, store, upstream, reader } = await setup({ maxBytes: 8 * MiB });
  const data = patternBytes(100 * MiB, 4);
  const d = upstream.add(data);
  const b = Buffer.alloc(MiB);
  for (let off = 0; off < data.length; off += MiB) {
    await reader.readAt(d, off, b);
    assert.ok(b.equals(data.subarray(off, off + MiB)));
  }
  await reader.flush();
  const { stdout } = await run('du', ['-sb', join(dir, 'chunks')]);
  const du = Number(stdout.split('\t')[0]);
  assert.ok(du <= 8 * MiB + 16 * MiB, `du ${du}`);
  assert.ok(store.size <= 8 * MiB);
  assert.ok(store.counters.evictions >= 90, `evictions ${store.counters.evictions}`);
  const before = upstream.requests.length;
  await reader.readAt(d, 99 * MiB, b);
  await reader.readAt(d, 95 * MiB, b);
  assert.equal(upstream.requests.length, before, 'the last chunks read are still cached');
  await reader.readAt(d, 0, b);
  assert.equal(upstream.requests.length, before + 1, 'the first chunk was evicted');
});

test('a flipped byte in a chunk file is a miss: correct bytes, corruption counted, verify clean after', async () => {
  const { store, upstream, reader } = await setup();
  const data = patternBytes(3 * MiB, 5);
  const d = upstream.add(data);
  await reader.readAt(d, 0, Buffer.alloc(3 * MiB));
  await reader.flush();
  const path = store.pathOf(chunkKey(d, MiB, 1));
  const file = await readFile(path);
  file[16 + 12345]! ^= 0xff;
  await writeFile(path, file);
  const fresh = new ChunkReader(store, upstream, { chunkSize: MiB, maxRequestBytes: 16 * MiB, globalConcurrency: 4, perBlobConcurrency: 4 });
  const b = Buffer.alloc(MiB);
  await fresh.readAt(d, MiB, b);
  assert.ok(b.equals(data.subarray(MiB, 2 * MiB)));
  assert.equal(store.counters.corruptions, 1);
  await fresh.flush();
  assert.deepEqual(await store.verifyAll(), []);
});

test('restart: the index is rebuilt from disk and cached reads make zero upstream requests', async () => {
  const first = await setup();
  const data = patternBytes(5 * MiB + 123, 6);
  const d = first.upstream.add(data);
  await first.reader.readAt(d, 0, Buffer.alloc(data.length));
  await first.reader.flush();
  await first.store.close();
  // A temp file left by a crash is removed at start.
  await writeFile(first.store.pathOf(chunkKey(d, MiB, 0)) + '.tmp.99999.0', 'partial');
  const second = await setup({ dir: first.dir });
  second.upstream.failWith = new Error('registry is down');
  const b = Buffer.alloc(data.length);
  assert.equal(await second.reader.readAt(d, 0, b), data.length);
  assert.ok(b.equals(data));
  assert.equal(second.upstream.requests.length, 0);
  assert.equal(second.upstream.sizeCalls, 0, 'the size came from the cache too');
  const shard = await readdir(join(first.store.pathOf(chunkKey(d, MiB, 0)), '..'));
  assert.equal(shard.filter((n) => n.includes('.tmp.')).length, 0);
});

test('a blob whose bytes do not match its digest is purged once complete', async () => {
  const { store, upstream, reader } = await setup();
  const data = patternBytes(2 * MiB, 7);
  const d = upstream.add(data);
  upstream.blobs.set(d, patternBytes(2 * MiB, 8)); // the "registry" now serves other bytes
  await reader.readAt(d, 0, Buffer.alloc(2 * MiB));
  await reader.flush();
  assert.equal(reader.counters.blobsPurged, 1);
  assert.equal(store.has(chunkKey(d, MiB, 0)), false);
  assert.equal(store.has(chunkKey(d, MiB, 1)), false);
});

test('a correct blob is verified once and marked', async () => {
  const { upstream, reader } = await setup();
  const d = upstream.add(patternBytes(3 * MiB + 7, 9));
  await reader.readAt(d, 0, Buffer.alloc(3 * MiB + 7));
  await reader.flush();
  assert.equal(reader.counters.blobsVerified, 1);
  assert.equal(reader.counters.blobsPurged, 0);
});

test('files are 0600 and dirs 0700', async () => {
  const { dir, store, upstream, reader } = await setup();
  const d = upstream.add(patternBytes(MiB, 10));
  await reader.readAt(d, 0, Buffer.alloc(10));
  await reader.flush();
  const p = store.pathOf(chunkKey(d, MiB, 0));
  assert.equal((await stat(p)).mode & 0o777, 0o600);
  assert.equal((await stat(join(p, '..'))).mode & 0o777, 0o700);
  assert.equal((await stat(join(dir, 'chunks'))).mode & 0o777, 0o700);
});

test('a second owner of the cache dir gets a clear error', async () => {
  const { dir } = await setup();
  await assert.rejects(DiskChunkStore.open({ dir, maxBytes: MiB, lock: true }), (e: Error & { code: string }) => e.code === 'ERR_CACHE_LOCKED' && e.message.includes(String(process.pid)));
});

test('a cache dir deleted under the reader: network reads with exact bytes, recreated on the next write', async () => {
  const { dir, store, upstream, reader } = await setup();
  const data = patternBytes(4 * MiB, 12);
  const d = upstream.add(data);
  await rm(join(dir, 'chunks'), { recursive: true });
  const b = Buffer.alloc(MiB);
  await reader.readAt(d, 0, b);
  assert.ok(b.equals(data.subarray(0, MiB)));
  await reader.flush();
  await reader.readAt(d, MiB, b);
  await reader.flush();
  assert.ok(b.equals(data.subarray(MiB, 2 * MiB)));
  assert.equal((await stat(store.pathOf(chunkKey(d, MiB, 1)))).size > MiB, true, 'chunk 1 was written into the recreated dir');
});
