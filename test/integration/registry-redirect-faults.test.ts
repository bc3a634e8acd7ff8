import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { parseDigest, type Digest } from '../../src/lib/digest.js';
import { createBlobFetcher } from '../../src/registry/index.js';
import { makeRegistry } from '../helpers/client.js';
import { type FaultProxy, startFaultProxy } from '../helpers/fault-proxy.js';
import { pushBlob, patternBytes } from '../helpers/images.js';
import { type RunningRegistry, startRegistry } from '../helpers/registry.js';
import { type StaticServer, startStaticServer } from '../helpers/static-server.js';
import { tempDir } from '../helpers/tmp.js';

const run = promisify(execFile);
const BLOB = patternBytes(8 << 20, 1234);

let dir: { path: string; cleanup: () => Promise<void> };
let storage: string;
let open: RunningRegistry;
let digest: Digest;
const stops: (() => Promise<void>)[] = [];

before(async () => {
  dir = await tempDir('redirect');
  storage = join(dir.path, 'storage');
  open = await startRegistry({ root: storage, workDir: dir.path });
  stops.push(open.stop);
  digest = parseDigest(await pushBlob(open.url, 'test/redir', BLOB));
});

after(async () => {
  for (const s of stops.reverse()) await s();
  await dir?.cleanup();
});

async function redirectingRegistry(): Promise<{ statik: StaticServer; reg: RunningRegistry; proxy: FaultProxy }> {
  const statik = await startStaticServer(storage);
  const htpasswd = join(dir.path, 'htpasswd');
  await writeFile(htpasswd, (await run('htpasswd', ['-Bbn', 'dave', 'pw'])).stdout);
  const reg = await startRegistry({ root: storage, workDir: dir.path, auth: { kind: 'htpasswd', path: htpasswd }, redirectBaseUrl: statik.url });
  const proxy = await startFaultProxy(reg.url);
  stops.push(statik.close, reg.stop, proxy.close);
  return { statik, reg, proxy };
}

test('redirecting registry: 64 range reads → one registry blob GET, no Authorization at the storage server', async () => {
  const { statik, proxy } = await redirectingRegistry();
  const { registry, counted } = makeRegistry({ hosts: { [proxy.host]: { username: 'dave', password: 'pw' } } });
  try {
    const f = createBlobFetcher(registry.client, { endpoint: proxy.host, repository: 'test/redir' });
    for (let round = 0; round < 4; round++) {
      await Promise.all(
        Array.from({ length: 16 }, async (_v, i) => {
          const off = (round * 16 + i) * 100_000;
          const buf = Buffer.alloc(50_000);
          assert.equal(await f.readAt(digest, off, buf), 50_000);
          assert.ok(buf.equals(BLOB.subarray(off, off + 50_000)));
        }),
      );
    }
    const blobGets = proxy.requests.filter((r) => r.method === 'GET' && r.path.includes('/blobs/'));
    // The gate's first request meets the 401 challenge, its retry gets the 307; every later range uses the cached URL.
    assert.equal(blobGets.filter((r) => r.headers.authorization).length, 1, 'one authenticated blob GET reached the registry');
    assert.equal(blobGets.length, 2);
    const ranged = statik.requests.filter((r) => r.method === 'GET');
    assert.equal(ranged.length, 64);
    assert.equal(ranged.filter((r) => r.headers.authorization !== undefined || r.headers.cookie !== undefined).length, 0);
    assert.equal(counted.redirectHits, 63);
  } finally {
    await registry.close();
  }
});

test('an expired redirect (403 once) is re-resolved once through the registry and the read succeeds', async () => {
  const { statik, proxy } = await redirectingRegistry();
  const { registry } = makeRegistry({ hosts: { [proxy.host]: { username: 'dave', password: 'pw' } } });
  try {
    const f = createBlobFetcher(registry.client, { endpoint: proxy.host, repository: 'test/redir' });
    const buf = Buffer.alloc(1000);
    await f.readAt(digest, 0, buf);
    const before = proxy.count(/\/blobs\//, 'GET');
    statik.failNext.push(403);
    await f.readAt(digest, 5000, buf);
    assert.ok(buf.equals(BLOB.subarray(5000, 6000)));
    assert.equal(proxy.count(/\/blobs\//, 'GET') - before, 1, 'one re-resolve through the registry');
  } finally {
    await registry.close();
  }
});

async function faultyOpen(budgetMs = 10_000): Promise<{ proxy: FaultProxy; read: (off: number, len: number) => Promise<Buffer>; close: () => Promise<void> }> {
  const proxy = await startFaultProxy(open.url);
  stops.push(proxy.close);
  const { registry } = makeRegistry({ retry: { budgetMs, baseDelayMs: 20, maxDelayMs: 200 }, headersTimeoutMs: 1000, bodyTimeoutMs: 1000 });
  const f = createBlobFetcher(registry.client, { endpoint: proxy.host, repository: 'test/redir' });
  return {
    proxy,
    read: async (off, len) => {
      const b = Buffer.alloc(len);
      const n = await f.readAt(digest, off, b);
      return b.subarray(0, n);
    },
    close: () => registry.close(),
  };
}

test('faults: 503, 503, then 200 succeeds', async () => {
  const t = await faultyOpen();
  try {
    t.proxy.inject(/\/blobs\//, { kind: 'status', status: 503 }, { kind: 'status', status: 503 });
    const b = await t.read(1000, 5000);
    assert.ok(b.equals(BLOB.subarray(1000, 6000)));
    assert.equal(t.proxy.count(/\/blobs\//), 3);
  } finally {
    await t.close();
  }
});

test('faults: 429 with Retry-After: 1 waits at least one second', async () => {
  const t = await faultyOpen();
  try {
    t.proxy.inject(/\/blobs\//, { kind: 'status', status: 429, headers: { 'retry-after': '1' } });
    const t0 = Date.now();
    const b = await t.read(0, 100);
    assert.ok(Date.now() - t0 >= 1000, `waited ${Date.now() - t0} ms`);
    assert.ok(b.equals(BLOB.subarray(0, 100)));
  } finally {
    await t.close();
  }
});

test('faults: 404 fails at once, naming the digest', async () => {
  const t = await faultyOpen();
  try {
    t.proxy.inject(/\/blobs\//, { kind: 'status', status: 404 });
    const t0 = Date.now();
    await assert.rejects(t.read(0, 100), (e: Error & { code: string; digest: string }) => e.code === 'ERR_NOT_FOUND' && e.digest === digest && e.message.includes(digest));
    assert.ok(Date.now() - t0 < 500);
    assert.equal(t.proxy.count(/\/blobs\//), 1);
  } finally {
    await t.close();
  }
});

test('faults: a reset or a truncation mid-body is resumed from the last byte received', async () => {
  const t = await faultyOpen();
  try {
    t.proxy.inject(/\/blobs\//, { kind: 'reset', afterBytes: 1_000_000 }, { kind: 'truncate', afterBytes: 500_000 });
    const b = await t.read(100, 4_000_000);
    assert.ok(b.equals(BLOB.subarray(100, 4_000_100)));
    const ranges = t.proxy.requests.filter((r) => r.path.includes('/blobs/')).map((r) => r.headers.range);
    assert.equal(ranges[0], 'bytes=100-4000099');
    assert.equal(ranges.length, 3);
    // The resumed requests start where the body stopped, not from scratch.
    assert.notEqual(ranges[1], ranges[0]);
    assert.notEqual(ranges[2], ranges[1]);
  } finally {
    await t.close();
  }
});

test('faults: a 200 that ignores Range, and a wrong Content-Range, still give the right bytes', async () => {
  const t = await faultyOpen();
  try {
    t.proxy.inject(/\/blobs\//, { kind: 'ignore-range' });
    assert.ok((await t.read(3_000_000, 10_000)).equals(BLOB.subarray(3_000_000, 3_010_000)));
    t.proxy.inject(/\/blobs\//, { kind: 'wrong-content-range' });
    assert.ok((await t.read(7, 10_000)).equals(BLOB.subarray(7, 10_007)));
  } finally {
    await t.close();
  }
});

test('faults: a server that never answers fails within the budget', async () => {
  const t = await faultyOpen(2500);
  const keepAlive = setInterval(() => {}, 1000);
  try {
    for (let i = 0; i < 20; i++) t.proxy.inject(/\/blobs\//, { kind: 'hang' });
    const t0 = Date.now();
    await assert.rejects(t.read(0, 100), { code: 'ERR_RETRY_BUDGET' });
    const took = Date.now() - t0;
    assert.ok(took >= 2000 && took < 4000, `took ${took} ms`);
  } finally {
    clearInterval(keepAlive);
    await t.close();
  }
});

test('faults: a server that drips bytes is abandoned by the body timeout and fails within the budget', async () => {
  const t = await faultyOpen(3000);
  try {
    for (let i = 0; i < 20; i++) t.proxy.inject(/\/blobs\//, { kind: 'drip', intervalMs: 1500 });
    const t0 = Date.now();
    await assert.rejects(t.read(0, 100_000), { code: 'ERR_RETRY_BUDGET' });
    assert.ok(Date.now() - t0 < 5000);
  } finally {
    await t.close();
  }
});

test('a per-registry connection cap bounds concurrent requests to that registry', async () => {
  const proxy = await startFaultProxy(open.url);
  stops.push(proxy.close);
  proxy.throttle(8 << 20);
  const { registry } = makeRegistry({ hosts: { [proxy.host]: { connections: 2 } } });
  try {
    const f = createBlobFetcher(registry.client, { endpoint: proxy.host, repository: 'test/redir' });
    await Promise.all(Array.from({ length: 12 }, async (_v, i) => {
      const b = Buffer.alloc(200_000);
      await f.readAt(digest, i * 300_000, b);
      assert.ok(b.equals(BLOB.subarray(i * 300_000, i * 300_000 + 200_000)));
    }));
    assert.equal(proxy.peakConcurrent, 2);
  } finally {
    proxy.throttle(0);
    await registry.close();
  }
});
