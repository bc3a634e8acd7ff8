import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { open } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { ChunkReader } from '../../src/blob/chunk-reader.js';
import { blobKey } from '../../src/blob/blob-key.js';
import { BlockStore } from '../../src/cache/block-store.js';
import { CountingUpstream } from '../helpers/fake-upstream.js';
import { patternBytes } from '../helpers/images.js';
import { tempDir } from '../helpers/tmp.js';

// Real disk failures need root (mount); they live here, not in test/unit, so `npm run test:unit`
// runs without root.
const run = promisify(execFile);
const MiB = 1 << 20;
const cleanups: (() => Promise<void>)[] = [];
after(async () => {
  for (const c of cleanups) await c();
});

async function setup(dir: string) {
  // 1 MiB blocks in 1 MiB segment files: every block read below is a new file in the cache dir.
  const store = await BlockStore.open({ dir, maxBytes: 1 << 30, blockSize: MiB, segmentBlocks: 1, lock: true });
  cleanups.unshift(() => store.close());
  const upstream = new CountingUpstream();
  const reader = new ChunkReader(store, upstream, { maxRequestBytes: 16 * MiB, globalConcurrency: 8, perBlobConcurrency: 4 });
  return { store, upstream, reader };
}

test('a full cache dir (16 MiB tmpfs) degrades to network reads: 40 exact 1 MiB reads, write errors counted', async () => {
  const mnt = await tempDir('tmpfs');
  cleanups.push(mnt.cleanup);
  await run('mount', ['-t', 'tmpfs', '-o', 'size=16m,mode=0700', 'tmpfs', mnt.path]);
  cleanups.unshift(async () => void (await run('umount', [mnt.path]).catch(() => {})));
  const { store, upstream, reader } = await setup(mnt.path);
  const data = patternBytes(40 * MiB, 11);
  const d = upstream.add(data);
  const b = Buffer.alloc(MiB);
  for (let off = 0; off < data.length; off += MiB) {
    assert.equal(await reader.readAt(d, off, b), MiB);
    assert.ok(b.equals(data.subarray(off, off + MiB)));
  }
  await reader.flush();
  assert.ok(store.counters.writeErrors >= 1);
  assert.equal(store.degraded, true);
});

test('a cache dir made read-only under the reader (EROFS): exact bytes from the network, the write error counted, nothing written', async () => {
  const t = await tempDir('ro-cache');
  cleanups.push(t.cleanup);
  const { store, upstream, reader } = await setup(t.path);
  const data = patternBytes(4 * MiB, 12);
  const d = upstream.add(data);
  const b = Buffer.alloc(MiB);
  await reader.readAt(d, 0, b);
  await reader.flush();
  assert.equal(store.counters.writeErrors, 0, 'writable at first');
  // A read-only bind mount of blobs/ over itself: a real EROFS for every write below it (root
  // ignores mode bits, so chmod would not stop it), and it stays read-only through the read.
  const chunks = join(t.path, 'blobs');
  await run('mount', ['--bind', chunks, chunks]);
  cleanups.unshift(async () => void (await run('umount', [chunks]).catch(() => {})));
  await run('mount', ['-o', 'remount,bind,ro', chunks]);
  await assert.rejects(open(join(chunks, 'probe'), 'w'), /EROFS/, 'the dir really is read-only');
  const fetchesBefore = upstream.requests.length;
  await reader.readAt(d, 3 * MiB, b);
  assert.ok(b.equals(data.subarray(3 * MiB, 4 * MiB)));
  assert.equal(upstream.requests.length - fetchesBefore, 1, 'served by one range request');
  await reader.flush();
  assert.ok(store.counters.writeErrors >= 1, `write errors ${store.counters.writeErrors}`);
  await assert.rejects(open(store.pathOf(blobKey(d), 3), 'r'), /ENOENT/, 'no segment file appeared');
  await run('umount', [chunks]);
});
