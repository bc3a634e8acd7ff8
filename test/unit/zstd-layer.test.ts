import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { openLayer, type LayerDeps } from '../../src/image/layer.js';
import { silentLogger } from '../../src/lib/logger.js';
import { CountingUpstream } from '../helpers/fake-upstream.js';
import { patternBytes } from '../helpers/images.js';
import { tempDir } from '../helpers/tmp.js';

const run = promisify(execFile);
const ZSTD = 'application/vnd.oci.image.layer.v1.tar+zstd';
const MiB = 1 << 20;

let dir: { path: string; cleanup: () => Promise<void> };
let tar: Buffer;
let names: string[];

before(async () => {
  dir = await tempDir('zstd-layer');
  const root = join(dir.path, 'root');
  await mkdir(join(root, 'data'), { recursive: true });
  await writeFile(join(root, 'data/big'), patternBytes(20 * MiB, 11));
  await writeFile(join(root, 'data/small'), patternBytes(1000, 12));
  await run('cp', ['-r', '/usr/share/common-licenses', join(root, 'licenses')]);
  await writeFile(join(root, 'data/last'), patternBytes(3 * MiB, 13));
  await run('tar', ['cf', join(dir.path, 'l.tar'), '-C', root, '.']);
  tar = await readFile(join(dir.path, 'l.tar'));
  names = (await run('tar', ['tf', join(dir.path, 'l.tar')])).stdout.trim().split('\n').map((n) => n.replace(/^\.\/?/, '').replace(/\/$/, ''));
});

after(() => dir?.cleanup());

async function zstd(data: Buffer): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const child = execFile('zstd', ['-q', '-3', '-c'], { encoding: 'buffer', maxBuffer: 256 << 20 }, (err, out) => (err ? reject(err) : resolve(out)));
    child.stdin!.end(data);
  });
}

function mapStore() {
  const m = new Map<string, Buffer>();
  return { m, get: async (k: string) => m.get(k), put: async (k: string, v: Uint8Array) => void m.set(k, Buffer.from(v)), load: async (k: string) => m.get(k), save: async (k: string, v: Buffer) => void m.set(k, v) };
}

function deps(up: CountingUpstream, indexes: ReturnType<typeof mapStore>, derived: ReturnType<typeof mapStore> | undefined, log = silentLogger): LayerDeps {
  const spans = new Map<string, Buffer>();
  return { blobs: up, indexes, derived, spans: { get: (k) => spans.get(k), set: (k, v) => void spans.set(k, v) }, log };
}

async function fileOf(layer: ReturnType<typeof openLayer>, path: string): Promise<Buffer> {
  const e = (await layer.entries()).find((x) => x.path === path)!;
  const b = Buffer.alloc(e.size);
  assert.equal(await layer.read(e, 0, b), e.size);
  return b;
}

test('plain zstd, one 26 MB frame: decoded once; after a restart with the blob unreachable it lists and reads from the stored pieces (0 blob requests)', async () => {
  const blob = await zstd(tar);
  const up = new CountingUpstream();
  const digest = up.add(blob);
  const indexes = mapStore();
  const derived = mapStore();
  const desc = { digest, size: blob.length, mediaType: ZSTD };
  const first = openLayer(desc, deps(up, indexes, derived));
  assert.deepEqual((await first.entries()).map((e) => e.path), names);
  // The zstd:chunked footer probe (72 bytes), then one pass over the blob.
  assert.equal(up.requests[0]!.length, 72);
  assert.equal(up.requests.slice(1).reduce((n, r) => n + r.length, 0), blob.length, 'the first pass reads the blob once');
  const pieces = [...derived.m.keys()];
  assert.ok(pieces.length >= Math.floor(tar.length / (4 * MiB)), `${pieces.length} stored pieces for ${tar.length} decoded bytes`);
  assert.ok(pieces.every((k) => k.startsWith(`${digest.replace(':', '-')}-zstd1-`)));

  // "Restart": fresh layer objects and memory, the same index and piece stores, no registry.
  up.failWith = new Error('the blob must not be read again');
  const requests = up.requests.length;
  const logs: string[] = [];
  const again = openLayer(desc, deps(up, indexes, derived, { ...silentLogger, info: (_o: unknown, m: string) => void logs.push(m) }));
  assert.deepEqual((await again.entries()).map((e) => e.path), names);
  assert.ok((await fileOf(again, 'data/big')).equals(patternBytes(20 * MiB, 11)));
  assert.ok((await fileOf(again, 'data/last')).equals(patternBytes(3 * MiB, 13)));
  assert.ok((await fileOf(again, 'licenses/GPL-3')).equals(await readFile('/usr/share/common-licenses/GPL-3')));
  assert.deepEqual(logs, []);
  assert.equal(up.requests.length, requests);
});

test('plain zstd, one frame, pieces evicted: one shared pass decodes the span again (logged once) and 3 concurrent reads get the right bytes', async () => {
  const blob = await zstd(tar);
  const up = new CountingUpstream();
  const digest = up.add(blob);
  const indexes = mapStore();
  const derived = mapStore();
  const desc = { digest, size: blob.length, mediaType: ZSTD };
  await openLayer(desc, deps(up, indexes, derived)).entries();
  derived.m.clear();
  const logs: string[] = [];
  const layer = openLayer(desc, deps(up, indexes, derived, { ...silentLogger, info: (_o: unknown, m: string) => void logs.push(m) }));
  const e = (await layer.entries()).find((x) => x.path === 'data/big')!;
  const bufs = [Buffer.alloc(4096), Buffer.alloc(4096), Buffer.alloc(4096)];
  const at = [0, 10 * MiB, 19 * MiB];
  await Promise.all(bufs.map((b, i) => layer.read(e, at[i]!, b)));
  const want = patternBytes(20 * MiB, 11);
  bufs.forEach((b, i) => assert.ok(b.equals(want.subarray(at[i]!, at[i]! + 4096)), `read at ${at[i]}`));
  assert.deepEqual(logs, ['decoding a zstd span again: its stored bytes were evicted from the cache']);
  assert.ok(derived.m.size > 0, 'the pass stored the pieces again');
});

test('plain zstd, 1 MiB frames: a 4 KiB read deep in the layer fetches one checkpoint span (< 4 MiB), not the layer', async () => {
  const frames: Buffer[] = [];
  for (let at = 0; at < tar.length; at += MiB) frames.push(await zstd(tar.subarray(at, at + MiB)));
  const blob = Buffer.concat(frames);
  const up = new CountingUpstream();
  const digest = up.add(blob);
  const indexes = mapStore();
  const derived = mapStore();
  await openLayer({ digest, size: blob.length, mediaType: ZSTD }, deps(up, indexes, derived)).entries();
  assert.equal(derived.m.size, 0, 'short spans store nothing');
  const layer = openLayer({ digest, size: blob.length, mediaType: ZSTD }, deps(up, indexes, derived));
  const e = (await layer.entries()).find((x) => x.path === 'data/last')!;
  const before = up.requests.length;
  const b = Buffer.alloc(4096);
  await layer.read(e, 2 * MiB, b);
  assert.ok(b.equals(patternBytes(3 * MiB, 13).subarray(2 * MiB, 2 * MiB + 4096)));
  const bytes = up.requests.slice(before).reduce((n, r) => n + r.length, 0);
  assert.ok(bytes > 0 && bytes < 4 * MiB, `fetched ${bytes} bytes of ${blob.length}`);
});

test('plain zstd: garbage and a truncated stream are ERR_LAYER_FORMAT, refused once (1 log line, no second pass)', async () => {
  const good = await zstd(tar.subarray(0, 2 * MiB));
  for (const [what, blob, re] of [
    ['garbage', Buffer.from('definitely not a zstd stream, just text'), /zstd: corrupt data near compressed offset 0/],
    ['truncated', good.subarray(0, good.length - 100), /zstd: the stream ends inside a frame \(truncated\)/],
  ] as const) {
    const up = new CountingUpstream();
    const digest = up.add(blob);
    const warns: string[] = [];
    const layer = openLayer({ digest, size: blob.length, mediaType: ZSTD }, deps(up, mapStore(), mapStore(), { ...silentLogger, warn: (_o: unknown, m: string) => void warns.push(m) }));
    await assert.rejects(layer.entries(), (e: Error & { code?: string }) => e.code === 'ERR_LAYER_FORMAT' && re.test(e.message), what);
    const requests = up.requests.length;
    await assert.rejects(layer.entries(), re);
    assert.equal(up.requests.length, requests, `${what}: the second use reads nothing`);
    assert.deepEqual(warns, ['layer refused: its files read EIO'], what);
  }
});
