import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { mkdir, readFile, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { type FaultProxy, startFaultProxy } from '../helpers/fault-proxy.js';
import { buildSmallImage } from '../helpers/fixture-image.js';
import { type BuiltImage, pushImage } from '../helpers/images.js';
import { CLI, type RunningMount, forceUnmount, makeMountpoint, parsePrometheus, startMount } from '../helpers/mount.js';
import { type RunningRegistry, startRegistry } from '../helpers/registry.js';
import { freePort, tempDir, waitFor, waitForMatch } from '../helpers/tmp.js';

const run = promisify(execFile);
const REPO = 'e2e/profile';
const MEDIA_TYPE = 'application/vnd.regfs.profile.v1+json';

let dir: { path: string; cleanup: () => Promise<void> };
let reg: RunningRegistry;
let proxy: FaultProxy;
let image: BuiltImage;
let ref: string;
let truth: string;
const mounts: string[] = [];
/** Layer 1 holds data/blob.bin (3 MiB), layer 2 etc/motd. */
const READ = ['etc/motd', 'data/blob.bin'];

before(async () => {
  dir = await tempDir('e2e-profile');
  image = await buildSmallImage(dir.path);
  reg = await startRegistry({ root: join(dir.path, 'storage'), workDir: dir.path });
  await pushImage(image, reg.host, REPO, 'v1');
  proxy = await startFaultProxy(reg.url);
  ref = `${proxy.host}/${REPO}:v1`;
  const bundle = join(dir.path, 'truth');
  await run('umoci', ['unpack', '--image', `${image.layout}:${image.tag}`, bundle]);
  truth = join(bundle, 'rootfs');
});

after(async () => {
  for (const m of mounts.reverse()) await forceUnmount(m);
  await proxy?.close();
  await reg?.stop();
  await dir?.cleanup();
});

interface Mounted {
  mnt: string;
  m: RunningMount;
  metric(name: string): Promise<number>;
  stop(): Promise<string>;
}

let seq = 0;
async function mount(cache: string, extra: string[] = []): Promise<Mounted> {
  const mnt = await makeMountpoint(dir.path, `mnt${seq++}`, mounts);
  const port = await freePort();
  const m = await startMount(ref, mnt, ['--cache-dir', cache, '--metrics', `127.0.0.1:${port}`, '--log-level', 'info', ...extra]);
  return {
    mnt,
    m,
    metric: async (name) => parsePrometheus(await (await fetch(`http://127.0.0.1:${port}/metrics`)).text()).get(name) ?? 0,
    stop: async () => {
      assert.deepEqual(await m.stop(), [0, null]);
      return m.stderr();
    },
  };
}

/** Reads the files the way a program does and checks every byte against umoci's unpack. */
async function readAll(mnt: string): Promise<void> {
  for (const p of READ) assert.ok((await readFile(join(mnt, 'rootfs', p))).equals(await readFile(join(truth, p))), `${p} reads byte-exact`);
}

async function regfs(args: string[]): Promise<{ stdout: string; stderr: string }> {
  return run(CLI, args, { maxBuffer: 16 << 20 });
}

const blobGets = (from: number): { path: string; range: string }[] =>
  proxy.requests.slice(from).filter((r) => r.method === 'GET' && /\/blobs\/sha256:/.test(r.path)).map((r) => ({ path: r.path, range: String(r.headers.range ?? '') }));

const logs = (stderr: string): { msg?: string; level?: string; err?: string; from?: string; blobRanges?: number; fileRanges?: number }[] =>
  stderr
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as { msg?: string });

interface ShownJson {
  image: string;
  files: { layer: string; path: string; ranges: [number, number][]; bytes: number }[];
  blobs: { digest: string; servedAs: string; ranges: [number, number][] }[];
}

const cacheA = (): string => join(dir.path, 'cache-a');

test('a mount that reads etc/motd then data/blob.bin records exactly those 2 files, whole, in that order; profile show lists them (table and --json)', async () => {
  const a = await mount(cacheA());
  await readAll(a.mnt);
  const stderr = await a.stop();
  assert.ok(logs(stderr).some((l) => l.msg === 'access profile saved'), 'the profile is saved at unmount (window not over yet)');

  const { stdout } = await regfs(['profile', 'show', ref, '--cache-dir', cacheA(), '--json', '--log-level', 'warn']);
  const shown = JSON.parse(stdout) as ShownJson;
  assert.equal(shown.image, image.manifestDigest);
  const sizes = await Promise.all(READ.map(async (p) => (await stat(join(truth, p))).size));
  assert.deepEqual(
    shown.files.map((f) => [f.layer, f.path, f.ranges, f.bytes]),
    [
      [image.layers[1]!.digest, 'etc/motd', [[0, sizes[0]]], sizes[0]],
      [image.layers[0]!.digest, 'data/blob.bin', [[0, sizes[1]]], sizes[1]],
    ],
  );
  // The compressed ranges those reads needed: within each layer, served through the index this cache built.
  assert.deepEqual(shown.blobs.map((b) => [b.digest, b.servedAs]).sort(), [image.layers[0]!.digest, image.layers[1]!.digest].sort().map((d) => [d, 'index']));
  for (const b of shown.blobs) {
    const size = image.layers.find((l) => l.digest === b.digest)!.size;
    assert.ok(b.ranges.length >= 1 && b.ranges.every(([s, e]) => s >= 0 && e > s && e <= size), `ranges of ${b.digest} lie within its ${size} bytes`);
  }

  const { stdout: tableText } = await regfs(['profile', 'show', ref, '--cache-dir', cacheA(), '--log-level', 'warn']);
  const rows = tableText.split('\n').filter((l) => /^\d+ /.test(l));
  assert.deepEqual(
    rows.map((r) => r.split(/\s+/).at(-1)),
    READ,
  );
  assert.match(tableText, new RegExp(`image +${image.manifestDigest}`));
});

test('after `cache clear` (layer indexes kept) a remount fetches the recorded ranges before any read; reading both files then makes 0 blob requests', async () => {
  await regfs(['cache', 'clear', '--cache-dir', cacheA(), '--log-level', 'warn']);
  const shown = JSON.parse((await regfs(['profile', 'show', ref, '--cache-dir', cacheA(), '--json', '--log-level', 'warn'])).stdout) as ShownJson;
  const from = proxy.requests.length;
  const b = await mount(cacheA());
  await waitFor('the profile replay', async () => (await b.metric('regfs_profile_replays_total')) === 1);
  const replayed = blobGets(from);
  // Nothing has read a file yet: every blob byte so far was fetched by the replay.
  const recorded = shown.blobs.reduce((n, x) => n + x.ranges.reduce((m, [s, e]) => m + e - s, 0), 0);
  assert.ok(replayed.length >= 1, 'the replay made range requests');
  for (const x of shown.blobs) assert.ok(replayed.some((g) => g.path.endsWith(x.digest)), `the replay fetched from ${x.digest}`);
  assert.equal(await b.metric('regfs_profile_replay_bytes_total'), recorded);
  assert.ok((await b.metric('regfs_fetched_bytes_total')) >= recorded, 'at least the recorded compressed bytes were fetched');
  const requestsBefore = await b.metric('regfs_range_requests_total');
  const before = proxy.requests.length;
  await readAll(b.mnt);
  assert.deepEqual(blobGets(before), [], 'reading the profiled files made no blob request');
  assert.equal(await b.metric('regfs_range_requests_total'), requestsBefore);
  const line = logs(await b.stop()).find((l) => l.msg === 'access profile replayed');
  assert.ok(line && line.blobRanges! >= 2 && line.fileRanges === 0, `replayed as recorded compressed ranges: ${JSON.stringify(line)}`);
});

test('SIGTERM while a replay is paced to 1 KiB/s (--prefetch-rate 1KiB): the mount exits 0, the replay is cut short (logged), no warning', async () => {
  await regfs(['cache', 'clear', '--cache-dir', cacheA(), '--log-level', 'warn']);
  const b = await mount(cacheA(), ['--prefetch-rate', '1KiB', '--profile-record', '0']);
  await waitForMatch(() => b.m.stderr(), /"msg":"access profile replay started"/, 20_000);
  const lines = logs(await b.stop());
  assert.deepEqual(lines.filter((l) => l.msg?.startsWith('access profile replay')).map((l) => l.msg), ['access profile replay started', 'access profile replay cut short (unmounted, or the image forgotten)']);
  assert.deepEqual(lines.filter((l) => l.level === 'warn' || l.level === 'error'), []);
});

test('every range request of a replay answered 404: the replay ends with its ranges failed, the reads then fetch for themselves and return every byte', async () => {
  await regfs(['cache', 'clear', '--cache-dir', cacheA(), '--log-level', 'warn']);
  // Layer blobs only: the config is fetched (whole) while the mount starts.
  proxy.inject((path) => image.layers.some((l) => path.endsWith(`/blobs/${l.digest}`)), ...Array.from({ length: 100 }, () => ({ kind: 'status' as const, status: 404 })));
  try {
    const b = await mount(cacheA(), ['--profile-record', '0']);
    await waitFor('the profile replay', async () => (await b.metric('regfs_profile_replays_total')) === 1);
    proxy.clearFaults();
    await readAll(b.mnt);
    const line = logs(await b.stop()).find((l) => l.msg === 'access profile replayed') as { failed?: number; blobRanges?: number } | undefined;
    assert.ok(line && line.failed! >= 1 && line.failed === line.blobRanges, `every recorded range failed: ${JSON.stringify(line)}`);
  } finally {
    proxy.clearFaults();
  }
});

test('profile push attaches it to the image (referrers tag on docker-registry 2.8); another machine (a cache with the layer indexes, no profile, no chunks) finds it, replays it before any read, then reads with 0 blob requests', async () => {
  const { stdout, stderr } = await regfs(['profile', 'push', ref, '--cache-dir', cacheA(), '--log-level', 'warn']);
  const manifest = stdout.trim();
  assert.match(manifest, /^sha256:[0-9a-f]{64}$/);
  assert.match(stderr, /referrers tag/);
  // The referrers tag's index lists it with our artifact type.
  const tag = `sha256-${image.manifestDigest.slice(7)}`;
  const index = (await (await fetch(`${reg.url}/v2/${REPO}/manifests/${tag}`, { headers: { accept: 'application/vnd.oci.image.index.v1+json' } })).json()) as { manifests: { digest: string; artifactType: string }[] };
  assert.deepEqual(index.manifests.map((m) => [m.digest, m.artifactType]), [[manifest, MEDIA_TYPE]]);
  // Pushing again replaces it: one current profile per image.
  const again = (await regfs(['profile', 'push', ref, '--cache-dir', cacheA(), '--log-level', 'warn'])).stdout.trim();
  const index2 = (await (await fetch(`${reg.url}/v2/${REPO}/manifests/${tag}`, { headers: { accept: 'application/vnd.oci.image.index.v1+json' } })).json()) as { manifests: { digest: string }[] };
  assert.deepEqual(index2.manifests.map((m) => m.digest), [again]);

  const other = join(dir.path, 'cache-other');
  await mkdir(other, { recursive: true });
  await run('cp', ['-r', join(cacheA(), 'indexes'), other]);
  const from = proxy.requests.length;
  const c = await mount(other);
  await waitFor('the profile replay', async () => (await c.metric('regfs_profile_replays_total')) === 1);
  assert.ok(blobGets(from).some((g) => g.path.endsWith(image.layers[0]!.digest) && g.range !== ''), 'the replay fetched ranges of layer 1');
  const before = proxy.requests.length;
  await readAll(c.mnt);
  assert.deepEqual(blobGets(before), [], 'reading the profiled files made no blob request');
  const line = logs(await c.stop()).find((l) => l.msg === 'access profile replayed');
  assert.equal(line?.from, `registry referrer ${again}`);
  // That mount recorded its own profile: the same files.
  const shown = JSON.parse((await regfs(['profile', 'show', ref, '--cache-dir', other, '--json', '--log-level', 'warn'])).stdout) as ShownJson;
  assert.deepEqual(shown.files.map((f) => f.path), READ);
});

test('a machine that serves the image through a SOCI zTOC (v1 referrer) replays the pushed profile through the zTOC (file ranges, not the recorded index spans); reads then make 0 blob requests', async () => {
  // The small image's layers are ~1–3 MiB: index them anyway, in 1 MiB spans.
  await regfs(['index', 'push', ref, '--v1', '--min-layer-size', '512KiB', '--span', '1MiB', '--cache-dir', join(dir.path, 'cache-soci-build'), '--log-level', 'warn']);
  const cache = join(dir.path, 'cache-soci');
  const s = await mount(cache);
  await waitFor('the profile replay', async () => (await s.metric('regfs_profile_replays_total')) === 1);
  assert.equal(await s.metric('regfs_layers_served_total{how="soci"}'), 2, 'both layers served through their zTOC');
  const before = proxy.requests.length;
  await readAll(s.mnt);
  assert.deepEqual(blobGets(before), [], 'reading the profiled files made no blob request');
  const line = logs(await s.stop()).find((l) => l.msg === 'access profile replayed');
  assert.ok(line && line.fileRanges! >= 2 && line.blobRanges === 0, `replayed through the layers: ${JSON.stringify(line)}`);
  // Its own profile records the zTOC's spans, for the next replay here.
  const shown = JSON.parse((await regfs(['profile', 'show', ref, '--cache-dir', cache, '--json', '--log-level', 'warn'])).stdout) as ShownJson;
  assert.deepEqual(shown.files.map((f) => f.path), READ);
  assert.ok(shown.blobs.length === 2 && shown.blobs.every((b) => b.servedAs.startsWith('soci sha256:') && b.ranges.length >= 1), JSON.stringify(shown.blobs));
});

test('profile clear removes it; --profile-replay none never looks', async () => {
  const cache = join(dir.path, 'cache-other');
  assert.match((await regfs(['profile', 'clear', ref, '--cache-dir', cache, '--log-level', 'warn'])).stdout, /removed the access profile of sha256:/);
  assert.match((await regfs(['profile', 'clear', ref, '--cache-dir', cache, '--log-level', 'warn'])).stdout, /no access profile for sha256:.*nothing to remove/);
  assert.equal((await regfs(['profile', 'show', ref, '--cache-dir', cache, '--json', '--log-level', 'warn'])).stdout.trim(), 'null');
  const from = proxy.requests.length;
  // --index none: SOCI discovery would ask the same referrers tag.
  const d = await mount(cache, ['--profile-replay', 'none', '--profile-record', '0', '--index', 'none']);
  await readdir(join(d.mnt, 'rootfs'));
  await d.stop();
  assert.equal(proxy.requests.slice(from).filter((r) => r.path.includes('/referrers/') || r.path.includes('/manifests/sha256-')).length, 0, 'no referrers lookup');
  assert.equal(await stat(join(cache, 'profiles', `sha256-${image.manifestDigest.slice(7)}.json`)).catch(() => undefined), undefined, 'nothing recorded with --profile-record 0');
});

test('serve: an image of the store records its profile (saved at stop); after `cache clear` the restarted service replays it at the first look inside the image, and the reads make 0 blob requests', async () => {
  const cache = join(dir.path, 'cache-serve');
  const store = join(dir.path, 'serve-store');
  mounts.push(store);
  const serve = async (): Promise<{ stop: () => Promise<string>; metric: (n: string) => Promise<number> }> => {
    const port = await freePort();
    const cfg = join(dir.path, 'serve.json');
    await writeFile(cfg, JSON.stringify({ store, cacheDir: cache, logLevel: 'info', metrics: `127.0.0.1:${port}`, index: 'none' }));
    const child = spawn(CLI, ['serve', '--config', cfg], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
    const exited = new Promise((r) => child.once('exit', (c, sig) => r([c, sig])));
    await waitFor('serve ready', async () => out.includes('regfs: serving'));
    return {
      metric: async (name) => parsePrometheus(await (await fetch(`http://127.0.0.1:${port}/metrics`)).text()).get(name) ?? 0,
      stop: async () => {
        child.kill('SIGTERM');
        assert.deepEqual(await exited, [0, null]);
        return err;
      },
    };
  };
  const imageDir = join(store, proxy.host, 'e2e', 'profile', 'v1');
  const s1 = await serve();
  await readAll(imageDir);
  assert.ok(logs(await s1.stop()).some((l) => l.msg === 'access profile saved'));
  const shown = JSON.parse((await regfs(['profile', 'show', ref, '--cache-dir', cache, '--json', '--log-level', 'warn'])).stdout) as ShownJson;
  assert.deepEqual(shown.files.map((f) => f.path), READ);

  await regfs(['cache', 'clear', '--cache-dir', cache, '--log-level', 'warn']);
  const s2 = await serve();
  assert.equal(await s2.metric('regfs_profile_replays_total'), 0, 'a restored image replays nothing until it is used');
  await readdir(imageDir);
  await waitFor('the profile replay', async () => (await s2.metric('regfs_profile_replays_total')) === 1);
  const before = proxy.requests.length;
  await readAll(imageDir);
  assert.deepEqual(blobGets(before), [], 'reading the profiled files made no blob request');
  await s2.stop();
});

test('a profile naming a file the image lacks, or hostile (huge, garbage, version 2, a range past the end, another image\'s) is ignored with one warning and fetches nothing', async () => {
  const good = JSON.parse(await readFile(join(cacheA(), 'profiles', `sha256-${image.manifestDigest.slice(7)}.json`), 'utf8')) as Record<string, unknown> & { files: { path: string }[]; blobs: { ranges: number[][] }[] };
  const layer0 = image.layers[0]!;
  const cases: [string, string | Buffer, RegExp][] = [
    ['missing file', JSON.stringify({ ...good, files: [...good.files, { ...good.files[1], path: 'data/no-such-file' }] }), /data\/no-such-file, which is not a file of layer/],
    ['huge', Buffer.alloc(5 << 20, 0x20), /access profile .* exceeds the limit of 4194304 bytes/],
    ['garbage', Buffer.from([0x7b, 0xff, 0x00, 0x13, 0x37]), /not JSON/],
    ['version 2', JSON.stringify({ ...good, version: 2 }), /version 2; this regfs reads version 1/],
    ['range past the end', JSON.stringify({ ...good, blobs: [{ digest: layer0.digest, servedAs: 'index', ranges: [[0, layer0.size + 1]] }] }), /ends past the end/],
    ['another image', JSON.stringify({ ...good, image: `sha256:${'ab'.repeat(32)}` }), /recorded for image sha256:abab/],
  ];
  for (const [name, body, why] of cases) {
    const cache = join(dir.path, `cache-hostile-${name.replace(/ /g, '-')}`);
    // A cache that has the layer indexes (copied), and the hostile profile.
    await mkdir(join(cache, 'profiles'), { recursive: true });
    await run('cp', ['-r', join(cacheA(), 'indexes'), cache]);
    await writeFile(join(cache, 'profiles', `sha256-${image.manifestDigest.slice(7)}.json`), body);
    // --index none: the image has a SOCI v1 index by now (test above); these layers come from the copied indexes.
    const e = await mount(cache, ['--profile-record', '0', '--index', 'none']);
    await waitFor(`${name}: the warning`, async () => (await e.metric('regfs_profile_replays_ignored_total')) === 1);
    assert.equal(await e.metric('regfs_profile_replay_bytes_total'), 0, `${name}: nothing replayed`);
    assert.equal(await e.metric('regfs_fetched_bytes_total'), 0, `${name}: no blob byte fetched`);
    const warnings = logs(await e.stop()).filter((l) => l.level === 'warn' || l.level === 'error' || l.level === 'fatal');
    assert.equal(warnings.length, 1, `${name}: one warning, got ${JSON.stringify(warnings)}`);
    assert.equal(warnings[0]!.msg, 'access profile ignored');
    assert.match(warnings[0]!.err!, why, name);
    await rm(cache, { recursive: true, force: true });
  }
});
