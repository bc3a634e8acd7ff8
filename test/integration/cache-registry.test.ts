import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { type FaultProxy, startFaultProxy } from '../helpers/fault-proxy.js';
import { pushBlob, patternBytes } from '../helpers/images.js';
import { type RunningRegistry, startRegistry } from '../helpers/registry.js';
import { tempDir, waitFor } from '../helpers/tmp.js';
import { ChunkReader } from '../../src/blob/chunk-reader.js';
import { BlockStore } from '../../src/cache/block-store.js';
import { parseDigest } from '../../src/lib/digest.js';
import { createBlobFetcher } from '../../src/registry/index.js';
import { makeRegistry } from '../helpers/client.js';

const run = promisify(execFile);
const CLI = join(import.meta.dirname, '../../../dist/cli/main.js');
const BLOB = patternBytes(100_000_000, 77);
const SHA = createHash('sha256').update(BLOB).digest('hex');

let dir: { path: string; cleanup: () => Promise<void> };
let reg: RunningRegistry;
let proxy: FaultProxy;
let digest: string;

before(async () => {
  dir = await tempDir('cache-reg');
  reg = await startRegistry({ root: join(dir.path, 'storage'), workDir: dir.path });
  digest = await pushBlob(reg.url, 'test/big', BLOB);
  proxy = await startFaultProxy(reg.url);
});

after(async () => {
  await proxy?.close();
  await reg?.stop();
  await dir?.cleanup();
});

async function blobSha(cacheDir: string, extra: string[] = []): Promise<string> {
  const { stdout } = await run('sh', ['-c', `node ${CLI} blob ${proxy.host}/test/big ${digest} --cache-dir ${cacheDir} --log-level warn ${extra.join(' ')} | sha256sum`], {
    maxBuffer: 1 << 20,
  });
  return stdout.split(' ')[0]!;
}

test('a 100 MB blob read twice: the second pass makes 0 HTTP requests, and works with the registry killed', async () => {
  const cache = join(dir.path, 'cache1');
  assert.equal(await blobSha(cache), SHA);
  const first = proxy.requests.length;
  assert.ok(first >= 7 && first <= 16, `first pass: ${first} requests (8 MiB coalesced ranges + HEAD)`);
  assert.equal(await blobSha(cache), SHA);
  assert.equal(proxy.requests.length, first, 'second pass: no HTTP request');
  await reg.kill();
  try {
    assert.equal(await blobSha(cache), SHA);
    assert.equal(proxy.requests.length, first);
  } finally {
    await reg.restart();
  }
  const stats = JSON.parse((await run('node', [CLI, 'cache', 'stats', '--json', '--cache-dir', cache])).stdout) as Record<string, number>;
  assert.equal(stats['blocks'], Math.ceil(BLOB.length / (64 << 10)), 'every 64 KiB block of the blob');
  assert.equal(stats['blobs'], 1);
  assert.equal(stats['fullyCachedBlobs'], 1);
  assert.equal(stats['verifiedBlobs'], 1);
});

test('kill -9 during heavy fetching: cache verify is clean after, and reads are byte-exact', async () => {
  const cache = join(dir.path, 'cache2');
  const child = spawn('node', [CLI, 'blob', `${proxy.host}/test/big`, digest, '--cache-dir', cache, '--log-level', 'warn'], { stdio: ['ignore', 'ignore', 'inherit'] });
  const base = proxy.requests.length;
  await waitFor('fetches under way', async () => proxy.requests.length - base >= 3, 30_000);
  child.kill('SIGKILL');
  const [code, signal] = await new Promise<[number | null, string | null]>((r) => child.once('exit', (c, s) => r([c, s])));
  assert.deepEqual([code, signal], [null, 'SIGKILL'], 'killed mid-fetch, not after finishing');
  const v = await run('node', [CLI, 'cache', 'verify', '--cache-dir', cache]);
  assert.match(v.stdout, / 0 corrupt/);
  assert.equal(await blobSha(cache), SHA);
  const again = await run('node', [CLI, 'cache', 'verify', '--cache-dir', cache]);
  assert.match(again.stdout, / 0 corrupt/);
});

test('cache verify finds and removes a corrupted block, exiting non-zero', async () => {
  const cache = join(dir.path, 'cache3');
  await run('sh', ['-c', `node ${CLI} blob ${proxy.host}/test/big ${digest} --cache-dir ${cache} --length 3000000 --log-level warn >/dev/null`]);
  const { stdout: files } = await run('sh', ['-c', `find ${cache}/blobs -type f -name 'sha256-${digest.slice(7)}.0'`]);
  const file = files.trim();
  assert.ok(file, 'segment 0 is on disk');
  // Byte 1000 of block 1 (the data starts 8 KiB into the file, blocks are 64 KiB).
  await run('sh', ['-c', `printf 'X' | dd of=${file} bs=1 seek=${8192 + 65536 + 1000} conv=notrunc status=none`]);
  const bad = await run('node', [CLI, 'cache', 'verify', '--cache-dir', cache]).then(
    () => ({ code: 0, stdout: '' }),
    (e: { code: number; stdout: string }) => e,
  );
  assert.equal(bad.code, 1);
  assert.match(bad.stdout, /1 corrupt/);
  const good = await run('node', [CLI, 'cache', 'verify', '--cache-dir', cache]);
  assert.match(good.stdout, / 0 corrupt/);
  await run('node', [CLI, 'cache', 'prune', '--to', '1MiB', '--cache-dir', cache]);
  const stats = JSON.parse((await run('node', [CLI, 'cache', 'stats', '--json', '--cache-dir', cache])).stdout) as Record<string, number>;
  assert.ok(stats['sizeBytes']! <= 1 << 20);
  await run('node', [CLI, 'cache', 'clear', '--cache-dir', cache]);
  const cleared = JSON.parse((await run('node', [CLI, 'cache', 'stats', '--json', '--cache-dir', cache])).stdout) as Record<string, number>;
  assert.equal(cleared['blocks'], 0);
});

test('through a real registry: 32 concurrent reads of one missing block → 1 range request; an 8 MiB read → 1', async () => {
  const t = await tempDir('cache-real');
  const store = await BlockStore.open({ dir: t.path, maxBytes: 1 << 30, blockSize: 1 << 20, lock: true });
  const { registry } = makeRegistry();
  try {
    const fetcher = createBlobFetcher(registry.client, { endpoint: proxy.host, repository: 'test/big' });
    const reader = new ChunkReader(store, fetcher, { maxRequestBytes: 16 << 20, globalConcurrency: 16, perBlobConcurrency: 8 });
    const d = parseDigest(digest);
    reader.knowSize(d, BLOB.length);
    const ranges = (): number => proxy.requests.filter((r) => r.path.includes('/blobs/') && r.headers.range).length;
    const before = ranges();
    const ok = await Promise.all(
      Array.from({ length: 32 }, async (_v, i) => {
        const b = Buffer.alloc(2000);
        await reader.readAt(d, (5 << 20) + i * 3000, b);
        return b.equals(BLOB.subarray((5 << 20) + i * 3000, (5 << 20) + i * 3000 + 2000));
      }),
    );
    assert.deepEqual(ok.filter((x) => !x), []);
    assert.equal(ranges() - before, 1);
    const big = Buffer.alloc(8 << 20);
    await reader.readAt(d, 16 << 20, big);
    assert.ok(big.equals(BLOB.subarray(16 << 20, 24 << 20)));
    assert.equal(ranges() - before, 2);
    assert.equal(proxy.requests[proxy.requests.length - 1]!.headers.range, `bytes=${16 << 20}-${(24 << 20) - 1}`);
    await reader.flush();
  } finally {
    await registry.close();
    await store.close();
    await t.cleanup();
  }
});
