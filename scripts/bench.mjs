#!/usr/bin/env node
// npm run bench [-- --profile loopback|wan|both --runs 5 --delay-ms 10 --rate 40MiB --scenarios 1,4 --cli path/to/main.js]
// Scenarios 1-8: issue #16's data path; 9: first work per layer format vs a full pull (#11, #14,
// #17); 10: podman through `serve --layer-store` (#18); 11: reads while a layer is indexed
// (#15); 12: reader stalls across a handover and a kill -9 restart (#19, loopback only).
//
// regfs measured side by side, in one run, against the physical limits and a peer:
//   - blob storage is nginx (Debian nginx-light) serving the registry's storage directory; the
//     registry answers blob GETs with 307 to it (docker-registry's `redirect` middleware), as a
//     registry in front of a CDN or S3 does;
//   - `rclone mount --vfs-cache-mode full` over an HTTP remote on the same nginx is the peer;
//   - curl through the same redirect, and a local file, are the limits.
// Each figure is the median of --runs samples, the tools interleaved within every run, the page
// cache dropped before every cold or warm read. The `wan` profile puts a shaping TCP proxy (a
// delay each way and a per-connection cap, test/helpers/shaping-proxy.ts) in front of the
// registry and of nginx. The issue's targets (#16 "Done means") are checked on every row.
import { execFile, spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { cp, mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { cpus, totalmem } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { cpuSeconds, peakRssMB, startNginx, startRclone } from './bench-servers.mjs';

const run = promisify(execFile);
const ROOT = new URL('..', import.meta.url).pathname;
const H = (m) => import(join(ROOT, 'dist-test/test/helpers', m));
const { startRegistry } = await H('registry.js');
const { startShapingProxy } = await H('shaping-proxy.js');
const { buildImage, blobPath, describeLayout, pushBlob, pushImage, pushRawImage, pushManifest, patternBytes } = await H('images.js');
const { forceUnmount, parsePrometheus } = await H('mount.js');
const { tempDir, freePort, waitFor } = await H('tmp.js');
const { stageLayers, pushStagedImage } = await H('container-image.js');
const { setupPodman } = await H('podman.js');
const { longest, mountsAt, startReaders } = await H('handover-readers.js');

// ---------- arguments ----------
const args = process.argv.slice(2);
if (args.includes('--help') || args.includes('-h')) {
  // The header comment is the manual: print it instead of starting a 20-minute run.
  const head = (await readFile(new URL(import.meta.url), 'utf8')).split('\n').slice(1);
  console.log(head.slice(0, head.findIndex((l) => !l.startsWith('//'))).map((l) => l.replace(/^\/\/ ?/, '')).join('\n'));
  process.exit(0);
}
const arg = (name, d) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? args[i + 1] : d;
};
const RUNS = Number(arg('runs', 5));
const PROFILES = arg('profile', 'both') === 'both' ? ['loopback', 'wan'] : [arg('profile')];
const DELAY = Number(arg('delay-ms', 10));
const RATE = parseRate(arg('rate', '40MiB'));
const OUT = join(ROOT, arg('out', 'bench-results'));
const ONLY = arg('scenarios') ? new Set(arg('scenarios').split(',').map(Number)) : undefined;
const want = (n) => !ONLY || ONLY.has(n);
const FIO_SECS = 3;
// --cli: another build of regfs to measure (e.g. a copy of dist/ from before a change).
const CLI = arg('cli', join(ROOT, 'dist/cli/main.js'));
function parseRate(s) {
  const m = /^(\d+(?:\.\d+)?)(MiB|MB|KiB|KB)?$/.exec(s);
  const unit = { MiB: 1 << 20, MB: 1e6, KiB: 1024, KB: 1e3 }[m?.[2] ?? 'MB'];
  return Math.round(Number(m?.[1] ?? 40) * unit);
}

// ---------- small utilities ----------
const log = (...a) => console.error('bench:', ...a);
const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};
const stats = (xs) => ({ min: Math.min(...xs), median: median(xs), max: Math.max(...xs), n: xs.length });
const dropCaches = async () => {
  await run('sync');
  await writeFile('/proc/sys/vm/drop_caches', '3').catch(() => log('cannot drop the page cache (not root?)'));
};
const time = async (fn) => {
  const t0 = performance.now();
  await fn();
  return (performance.now() - t0) / 1000;
};
const sh = (cmd, opts = {}) => run('sh', ['-c', cmd], { maxBuffer: 64 << 20, ...opts });
const MB = 1e6;
const q = (p) => `'${p}'`;

const samples = [];
const results = [];
/**
 * One row: regfs samples `a`, baseline samples `b` (same run index = same interleaved run).
 * The ratio is taken per run, then its median: robust to drift on a shared machine.
 */
function record(scenario, profile, metric, a, b, unit, target) {
  const row = { scenario, profile, metric, unit, a: stats(a), b: b ? stats(b) : undefined, target };
  if (b) row.ratio = stats(a.map((x, i) => x / b[i]));
  row.met = target === undefined ? undefined : target.test(row);
  results.push(row);
  samples.push({ scenario, profile, metric, a, b });
  log(`${scenario} ${profile}: ${fmt(row)}${row.met === undefined ? '' : row.met ? ' (met)' : ' (MISSED)'}`);
}
const fmt = (row) => {
  const f = (s) => `${f2(s.min)}/${f2(s.median)}/${f2(s.max)}`;
  return `${f(row.a)}${row.b ? ` vs ${f(row.b)} ${row.unit}; ratio ${f(row.ratio)}` : ` ${row.unit}`}`;
};
const f2 = (n) => (Math.abs(n) >= 100 ? n.toFixed(0) : n.toFixed(2));
const atLeast = (x) => ({ text: `≥ ${x}`, test: (r) => (r.ratio ?? r.a).median >= x });
const atMost = (x) => ({ text: `≤ ${x}`, test: (r) => (r.ratio ?? r.a).median <= x });

// ---------- set-up ----------
const work = await tempDir('bench');
const cleanups = [];
const cleanup = async () => {
  for (const c of cleanups.reverse()) await c().catch(() => {});
  cleanups.length = 0;
};
process.on('SIGINT', async () => {
  await cleanup();
  process.exit(130);
});
process.on('uncaughtException', async (e) => {
  console.error(e);
  await cleanup();
  process.exit(1);
});
const storage = join(work.path, 'storage');
await mkdir(storage, { recursive: true });
log(`work dir ${work.path}; profiles ${PROFILES.join(', ')}; ${RUNS} runs; wan = ${DELAY} ms each way, ${RATE / MB} MB/s per connection`);
const nginx = await startNginx(storage, work.path, await freePort());
cleanups.push(nginx.close);
const open = await startRegistry({ root: storage, workDir: work.path });
cleanups.push(open.stop);

log('building the gzip image from real files (a ~9k-line ls -lR tree + incompressible data)');
const TREE = ['/etc', '/usr/share/perl', '/usr/share/zoneinfo', '/usr/lib/python3', '/usr/lib/gcc', '/usr/libexec'];
const rootfsSpec = async (r) => {
  await mkdir(join(r, 'usr/bin'), { recursive: true });
  await cp('/usr/bin/bash', join(r, 'usr/bin/bash'));
  for (const d of TREE) await cp(d, join(r, d.slice(1)), { recursive: true, verbatimSymlinks: true, errorOnExist: false, force: true }).catch(() => {});
  await rm(join(r, 'etc/os-release'), { force: true });
  await cp('/etc/os-release', join(r, 'etc/os-release'), { dereference: true });
  await mkdir(join(r, 'data'), { recursive: true });
  for (let i = 0; i < 8; i++) await writeFile(join(r, 'data', `blob${i}`), patternBytes(4 << 20, 900 + i));
};
const gzImage = await buildImage(work.path, 'benchgz', [rootfsSpec]);
await pushImage(gzImage, open.host, 'bench/gz');
const layer = gzImage.layers[0];
log(`gzip layer ${layer.digest} is ${(layer.size / MB).toFixed(1)} MB`);
// The same tree on local disk: the limit for ls -lR.
const localTree = join(work.path, 'local-tree');
await rootfsSpec(localTree);
const treeLines = Number((await sh(`ls -lR ${q(localTree)} | wc -l`)).stdout.trim());

log('converting the same rootfs to eStargz with the reference converter');
const convert = join(work.path, 'estargz-convert');
await run(join(ROOT, 'scripts/build-estargz-convert.sh'), [convert]);
await run('tar', ['cf', join(work.path, 'rootfs.tar'), '-C', localTree, '.']);
const esgzOut = join(work.path, 'layer.esgz');
const conv = JSON.parse((await run(convert, [join(work.path, 'rootfs.tar'), esgzOut, 'usr/bin/bash', 'etc/os-release'])).stdout);
await pushRawImage(open.url, 'bench/esgz', 'v1', [{ data: await readFile(esgzOut), mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', annotations: { 'containerd.io/snapshot/stargz/toc.digest': conv.tocDigest } }]);
await rm(join(work.path, 'rootfs.tar'));

// Scenario 9's zstd:chunked (#17) and SOCI (#14) variants of the same image.
if (want(9)) {
  log('converting the gzip image to zstd:chunked with skopeo');
  const zc = join(work.path, 'zc');
  await run('skopeo', ['copy', '--quiet', '--dest-compress', '--dest-compress-format', 'zstd:chunked', `oci:${gzImage.layout}:${gzImage.tag}`, `oci:${zc}:latest`]);
  const zcImage = await describeLayout(zc, 'latest');
  const manifest = JSON.parse(await readFile(blobPath(zc, zcImage.manifestDigest), 'utf8'));
  const zcLayers = await Promise.all(manifest.layers.map(async (l) => ({ data: await readFile(blobPath(zc, l.digest)), mediaType: l.mediaType, annotations: l.annotations })));
  await pushRawImage(open.url, 'bench/zc', 'v1', zcLayers);
  log(`zstd:chunked layer is ${(zcLayers[0].data.length / MB).toFixed(1)} MB`);
  // Built once with regfs's own `index push` (not timed: an index is built once per image).
  log('pushing a SOCI index for the gzip image (regfs index push --tag soci)');
  await run(join(ROOT, 'dist/cli/main.js'), ['index', 'push', `${open.host}/bench/gz`, '--tag', 'soci', '--cache-dir', join(work.path, 'cache-soci-build'), '--log-level', 'warn']);
}

// 12: a 100 MiB blob read in a sha256 loop and a 4 MiB one read slowly, across daemon restarts (#19).
let keep;
if (want(12)) {
  const big = patternBytes(100 << 20, 1201);
  const slow = patternBytes(4 << 20, 1202);
  const pushed = await pushRawImage(open.url, 'bench/keep', 'v1', [big, slow]);
  keep = { digests: pushed.layers.map((l) => l.digest), bigSha: createHash('sha256').update(big).digest('hex'), slow };
}

// 10: the podman test image (3 layers of real files, ~170 MB of it never read) as eStargz and gzip.
if (want(10)) {
  log('building the podman image (eStargz and gzip)');
  const stages = await stageLayers(join(work.path, 'podman-stage'));
  // Plus 100 MiB nobody reads in the app layer, so the image weighs what a service image does.
  for (let i = 0; i < 25; i++) await writeFile(join(stages[1], 'opt/app', `data${i}`), patternBytes(4 << 20, 700 + i));
  for (const format of ['estargz', 'gzip']) await pushStagedImage(open.url, open.host, 'bench/app', stages, format, work.path, convert);
  // The gzip image again, in a repository of its own, with a SOCI index attached (#14/#18).
  await pushStagedImage(open.url, open.host, 'bench/app-soci', stages, 'gzip', work.path);
  await run(join(ROOT, 'dist/cli/main.js'), ['index', 'push', `${open.host}/bench/app-soci:gzip`, '--v1', '--cache-dir', join(work.path, 'cache-soci-app'), '--log-level', 'warn']);
}

log('pushing a 1 GiB random blob');
const BIG = 1 << 30;
const bigPath = join(work.path, 'big.bin');
let bigDigest;
{
  const ws = createWriteStream(bigPath);
  const h = createHash('sha256');
  for (let i = 0; i < BIG >> 20; i++) {
    const b = randomBytes(1 << 20);
    h.update(b);
    if (!ws.write(b)) await new Promise((r) => ws.once('drain', r));
  }
  await new Promise((r) => ws.end(r));
  bigDigest = `sha256:${h.digest('hex')}`;
  const startUp = await fetch(`${open.url}/v2/bench/big/blobs/uploads/`, { method: 'POST' });
  const loc = new URL(startUp.headers.get('location'), open.url);
  loc.searchParams.set('digest', bigDigest);
  const put = await fetch(loc, { method: 'PUT', body: createReadStream(bigPath), duplex: 'half', headers: { 'content-type': 'application/octet-stream' } });
  if (put.status !== 201) throw new Error(`1 GiB upload: HTTP ${put.status}`);
  const config = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [bigDigest] } }));
  const cfgDigest = await pushBlob(open.url, 'bench/big', config);
  await pushManifest(open.url, 'bench/big', 'v1', JSON.stringify({
    schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json',
    config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: cfgDigest, size: config.length },
    layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar', digest: bigDigest, size: BIG }],
  }), 'application/vnd.oci.image.manifest.v1+json');
}
await rm(bigPath);
const storagePath = (digest) => `docker/registry/v2/blobs/sha256/${digest.slice(7, 9)}/${digest.slice(7)}/data`;
// A local copy of the layer: the limit for warm reads.
const localLayer = join(work.path, 'layer.local');
await cp(join(storage, storagePath(layer.digest)), localLayer);

/** Registry (redirecting to nginx) and nginx itself, behind the shaper when wan. */
async function profileEndpoints(profile) {
  const shape = async (port) => {
    if (profile === 'loopback') return `127.0.0.1:${port}`;
    const s = await startShapingProxy({ host: '127.0.0.1', port }, { delayMs: DELAY, bytesPerSec: RATE });
    cleanups.push(s.close);
    return s.host;
  };
  const blobHost = await shape(nginx.port);
  const reg = await startRegistry({ root: storage, workDir: work.path, redirectBaseUrl: `http://${blobHost}/` });
  cleanups.push(reg.stop);
  return { registry: await shape(reg.port), blobHost };
}

let seq = 0;
/**
 * A fresh `regfs mount` with an empty cache; `fn` gets the mountpoint, daemon pid and metrics.
 * `metrics: false` leaves out --metrics (prom-client costs ~13 MB and its load time) where
 * memory or start-up time is what is measured.
 */
/** A work dir for one `regfs serve` (scenarios 11, 12): its store, cache and config file. */
async function serveConfig(name, settings) {
  const dir = join(work.path, name);
  const store = join(dir, 'store');
  await mkdir(store, { recursive: true });
  const cfg = join(dir, 'serve.json');
  await writeFile(cfg, JSON.stringify({ store, cacheDir: join(dir, 'cache'), ...settings }));
  return { dir, store, cfg };
}

async function withMount(ref, fn, { metrics: withMetrics = true, cache: keptCache } = {}) {
  const mnt = join(work.path, `mnt${seq}`);
  // `cache`: a cache dir the caller owns and keeps (scenario 9's access profile run).
  const cache = keptCache ?? join(work.path, `cache${seq++}`);
  await mkdir(mnt, { recursive: true });
  const port = await freePort();
  const t0 = performance.now();
  const child = spawn(CLI, ['mount', ref, mnt, '--cache-dir', cache, '--log-level', 'warn', ...(withMetrics ? ['--metrics', `127.0.0.1:${port}`] : [])], { stdio: ['ignore', 'pipe', 'pipe'] });
  let err = '';
  child.stderr.on('data', (d) => (err += d));
  const exited = new Promise((r) => child.once('exit', r));
  await new Promise((resolve, reject) => {
    let out = '';
    child.stdout.on('data', (d) => {
      out += d;
      if (out.includes('regfs: mounted')) resolve();
    });
    void exited.then(() => reject(new Error(`regfs mount exited before ready: ${err}`)));
  });
  const readySecs = (performance.now() - t0) / 1000;
  cleanups.push(() => forceUnmount(mnt));
  const metrics = async () => parsePrometheus(await (await fetch(`http://127.0.0.1:${port}/metrics`)).text());
  try {
    const out = await fn({ mnt, pid: child.pid, metrics, t0, readySecs });
    // A benchmark of wrong bytes is worthless: stop if any blob failed its digest check.
    if (withMetrics && ((await metrics()).get('regfs_blobs_purged_total') ?? 0) > 0) throw new Error(`a blob failed verification during the run (${ref})`);
    return out;
  } finally {
    child.kill('SIGTERM');
    await exited;
    if (!keptCache) await rm(cache, { recursive: true, force: true });
  }
}

/** An rclone mount of nginx's blob directory with an empty VFS cache. */
async function withRclone(blobHost, fn) {
  const mnt = join(work.path, `rclone${seq}`);
  const cache = join(work.path, `rclone-cache${seq++}`);
  const rc = await startRclone(`http://${blobHost}/docker/registry/v2/blobs/sha256/`, mnt, cache, forceUnmount);
  cleanups.push(rc.close);
  try {
    return await fn({ file: (digest) => join(mnt, digest.slice(7, 9), digest.slice(7), 'data'), pid: rc.pid });
  } finally {
    await rc.close();
    await rm(cache, { recursive: true, force: true });
  }
}

/** Sequential read of `bytes` at `skip` MiB with dd; MB/s. */
const ddRate = async (file, bytes, skipMiB = 0) => bytes / MB / (await time(() => sh(`dd if=${q(file)} of=/dev/null bs=1M skip=${skipMiB} count=${Math.ceil(bytes / (1 << 20))} status=none`)));
/** Sequential read measuring the reading process's CPU too. */
async function coldRead(file, bytes, pid) {
  const c0 = await cpuSeconds(pid);
  const rate = await ddRate(file, bytes);
  return { rate, cpuPerGB: ((await cpuSeconds(pid)) - c0) / (bytes / 1e9) };
}
/** fio, one job, psync; the file's page cache is dropped first (fio's default invalidate=1). */
async function fio(file, bs, secs = FIO_SECS) {
  // fio splits --filename at ':' unless escaped; digests contain one.
  const { stdout } = await run('fio', ['--name=r', `--filename=${file.replace(/:/g, '\\:')}`, '--readonly', '--rw=randread', `--bs=${bs}`, '--ioengine=psync', '--numjobs=1', '--time_based', `--runtime=${secs}`, '--output-format=json'], { maxBuffer: 16 << 20 });
  const r = JSON.parse(stdout).jobs[0].read;
  return { iops: r.iops, ios: r.total_ios, p50ms: (r.clat_ns?.percentile?.['50.000000'] ?? 0) / 1e6 };
}
const fetched = async (metrics) => (await metrics()).get('regfs_fetched_bytes_total') ?? 0;

// ---------- scenarios ----------
for (const profile of PROFILES) {
  const ep = await profileEndpoints(profile);
  const wan = profile === 'wan';
  const gzRef = `${ep.registry}/bench/gz`;
  const bigRef = `${ep.registry}/bench/big:v1`;
  const blobUrl = (d) => `http://${ep.registry}/v2/bench/${d === bigDigest ? 'big' : 'gz'}/blobs/${d}`;
  // On wan the 1 GiB blob would take ~27 s per single-stream reader per run: sequential figures
  // use the layer there, the big blob only where its size matters (random reads, 4 readers).
  const seqBlobs = wan ? [[layer.digest, layer.size, 'layer']] : [[layer.digest, layer.size, 'layer'], [bigDigest, BIG, '1 GiB']];
  log(`--- profile ${profile} ---`);
  const S = {};
  const put = (k, v) => (S[k] ??= []).push(v);

  for (let i = 0; i < RUNS; i++) {
    log(`${profile} run ${i + 1}/${RUNS}`);
    // 1, 2, 3, 8: sequential cold and warm, warm random 4 KiB; curl, rclone, regfs, local file.
    if (want(1) || want(2) || want(3) || want(8)) {
      for (const [d, size, name] of seqBlobs) {
        await dropCaches();
        put(`curl ${name}`, size / MB / (await time(() => sh(`curl -sfL -o /dev/null ${q(blobUrl(d))}`))));
      }
      await withRclone(ep.blobHost, async ({ file, pid }) => {
        for (const [d, size, name] of seqBlobs) {
          await dropCaches();
          const r = await coldRead(file(d), size, pid);
          put(`rclone cold ${name}`, r.rate);
          put(`rclone cpu ${name}`, r.cpuPerGB);
        }
        await dropCaches();
        put('rclone warm layer', await ddRate(file(layer.digest), layer.size));
        put('rclone warm 4k', (await fio(file(layer.digest), '4k')).iops);
      });
      await withMount(gzRef, async ({ mnt, pid }) => {
        const f = join(mnt, 'blobs', layer.digest);
        await dropCaches();
        const r = await coldRead(f, layer.size, pid);
        put('regfs cold layer', r.rate);
        put('regfs cpu layer', r.cpuPerGB);
        await dropCaches();
        put('regfs warm layer', await ddRate(f, layer.size));
        put('regfs warm 4k', (await fio(f, '4k')).iops);
      });
      if (!wan) {
        await withMount(bigRef, async ({ mnt, pid }) => {
          await dropCaches();
          const r = await coldRead(join(mnt, 'blobs', bigDigest), BIG, pid);
          put('regfs cold 1 GiB', r.rate);
          put('regfs cpu 1 GiB', r.cpuPerGB);
          put('regfs rss 1 GiB', await peakRssMB(pid));
          // The bytes were right: the daemon hashed the whole blob against its digest.
          const { stdout } = await sh(`sha256sum < ${q(join(mnt, 'blobs', bigDigest))}`);
          if (!stdout.startsWith(bigDigest.slice(7))) throw new Error('the 1 GiB blob read back wrong');
        }, { metrics: false });
      }
      await dropCaches();
      put('local warm layer', await ddRate(localLayer, layer.size));
      put('local warm 4k', (await fio(localLayer, '4k')).iops);
    }

    // 4: cold random 4 KiB on the 1 GiB blob: IOPS, bytes fetched per read, latency.
    if (want(4)) {
      await withMount(bigRef, async ({ mnt, metrics }) => {
        await dropCaches();
        const before = await fetched(metrics);
        const r = await fio(join(mnt, 'blobs', bigDigest), '4k');
        put('regfs cold rand iops', r.iops);
        put('regfs cold rand p50', r.p50ms);
        put('regfs cold rand KiB/read', ((await fetched(metrics)) - before) / 1024 / r.ios);
      });
      await withRclone(ep.blobHost, async ({ file }) => {
        await dropCaches();
        const r = await fio(file(bigDigest), '4k');
        put('rclone cold rand iops', r.iops);
        put('rclone cold rand p50', r.p50ms);
      });
    }

    // 5: 4 readers at different offsets of the cold 1 GiB blob vs one reader; 4 curls.
    if (want(5)) {
      const each = wan ? 32 << 20 : 128 << 20;
      const four = (cmd) => time(() => sh(`${[0, 1, 2, 3].map((k) => cmd(k)).join(' & ')} & wait`));
      await withMount(bigRef, async ({ mnt }) => {
        const f = q(join(mnt, 'blobs', bigDigest));
        await dropCaches();
        put('regfs 4 readers', (4 * each) / MB / (await four((k) => `dd if=${f} of=/dev/null bs=1M skip=${k * 256} count=${each >> 20} status=none`)));
      });
      await withMount(bigRef, async ({ mnt }) => {
        await dropCaches();
        put('regfs 1 reader', await ddRate(join(mnt, 'blobs', bigDigest), each, 512));
      });
      await dropCaches();
      put('curl 4 readers', (4 * each) / MB / (await four((k) => `curl -sfL -o /dev/null -r ${k * 256 * 2 ** 20}-${k * 256 * 2 ** 20 + each - 1} ${q(blobUrl(bigDigest))}`)));
    }

    // 6: ls -lR of the rootfs, warm (listed once before), against the same tree on local disk.
    if (want(6)) {
      await withMount(gzRef, async ({ mnt }) => {
        await sh(`ls -lR ${q(join(mnt, 'rootfs'))} > /dev/null`);
        put('regfs ls -lR', await time(() => sh(`ls -lR ${q(join(mnt, 'rootfs'))} > /dev/null`)));
      });
      await sh(`ls -lR ${q(localTree)} > /dev/null`);
      put('local ls -lR', await time(() => sh(`ls -lR ${q(localTree)} > /dev/null`)));
    }

    // 7: eStargz, fresh mount (cold cache) to `bash --version` + os-release.
    if (want(7)) {
      const work7 = (mnt) => sh(`${q(join(mnt, 'rootfs/usr/bin/bash'))} --version > /dev/null && cat ${q(join(mnt, 'rootfs/etc/os-release'))} > /dev/null`);
      await dropCaches();
      await withMount(`${ep.registry}/bench/esgz:v1`, async ({ mnt, t0, readySecs }) => {
        await work7(mnt);
        put('esgz first work', (performance.now() - t0) / 1000);
        put('esgz ready', readySecs);
      }, { metrics: false });
      await withMount(`${ep.registry}/bench/esgz:v1`, async ({ mnt, metrics }) => {
        await work7(mnt);
        put('esgz MB fetched', (await fetched(metrics)) / MB);
      });
    }
    // 9: bash + os-release from a fresh mount of each format, against a full pull (skopeo copy +
    // umoci unpack + the same reads) — the targets of #11/#14/#17.
    if (want(9)) {
      const dest = join(work.path, `pull${i}`);
      await dropCaches();
      put('pull', await time(async () => {
        await run('skopeo', ['copy', '--quiet', '--src-tls-verify=false', `docker://${ep.registry}/bench/gz`, `oci:${dest}:x`]);
        await run('umoci', ['unpack', '--image', `${dest}:x`, `${dest}-bundle`]);
        await sh(`cat ${dest}-bundle/rootfs/usr/bin/bash ${dest}-bundle/rootfs/etc/os-release > /dev/null`);
      }));
      await rm(dest, { recursive: true, force: true });
      await rm(`${dest}-bundle`, { recursive: true, force: true });
      for (const [ref, name] of [[`${ep.registry}/bench/esgz:v1`, 'esgz'], [`${ep.registry}/bench/zc:v1`, 'zc'], [gzRef, 'gz'], [`${ep.registry}/bench/gz:soci`, 'soci']]) {
        // Timed as a user runs it (no --metrics: its endpoint loads prom-client, ~35 ms); the
        // bytes from a second fresh mount with metrics, as scenario 7 does.
        await dropCaches();
        await withMount(ref, async ({ mnt, t0 }) => {
          await sh(`cat ${q(join(mnt, 'rootfs/usr/bin/bash'))} ${q(join(mnt, 'rootfs/etc/os-release'))} > /dev/null`);
          put(`first ${name}`, (performance.now() - t0) / 1000);
        }, { metrics: false });
        await withMount(ref, async ({ mnt, metrics }) => {
          await sh(`cat ${q(join(mnt, 'rootfs/usr/bin/bash'))} ${q(join(mnt, 'rootfs/etc/os-release'))} > /dev/null`);
          put(`first ${name} MB`, (await fetched(metrics)) / MB);
        });
      }
      // #15: the gzip image with the access profile an earlier mount recorded (saved when it
      // stopped), then `regfs cache clear`: the chunks go, the layer index (not a chunk, kept by
      // clear and by eviction) and the profile stay — "the same machine after its chunks were evicted".
      const profiled = join(work.path, `cache-profile${i}`);
      const readBoth = (mnt) => sh(`cat ${q(join(mnt, 'rootfs/usr/bin/bash'))} ${q(join(mnt, 'rootfs/etc/os-release'))} > /dev/null`);
      await withMount(gzRef, ({ mnt }) => readBoth(mnt), { cache: profiled, metrics: false });
      await run(CLI, ['cache', 'clear', '--cache-dir', profiled, '--log-level', 'warn']);
      await dropCaches();
      await withMount(gzRef, async ({ mnt, metrics, t0 }) => {
        await readBoth(mnt);
        put('first gz profiled', (performance.now() - t0) / 1000);
        put('first gz profiled MB', (await fetched(metrics)) / MB);
      }, { cache: profiled });
      await rm(profiled, { recursive: true, force: true });
    }
  }

  // 10: podman run of a command reading a few files: through `serve --layer-store` (pull moves
  // no layer bytes; the run fetches what it reads) ÷ podman pull + run with plain storage.
  if (want(10)) {
    let pseq = 0;
    const startServe = async (dir) => {
      const cfg = join(dir, 'serve.json');
      await writeFile(cfg, JSON.stringify({ store: join(dir, 'store'), layerStore: join(dir, 'layers'), cacheDir: join(dir, 'cache'), logLevel: 'warn' }));
      const child = spawn('node', [CLI, 'serve', '--config', cfg], { stdio: ['ignore', 'pipe', 'ignore'] });
      let out = '';
      child.stdout.on('data', (d) => (out += d));
      await waitFor('regfs serve', async () => out.includes('regfs: serving'));
      const stop = async () => {
        if (child.exitCode !== null) return;
        const exited = new Promise((r) => child.once('exit', r));
        child.kill('SIGTERM');
        await exited;
      };
      cleanups.push(stop);
      return stop;
    };
    for (const format of ['estargz', 'gzip', 'gzip with a SOCI index']) {
      const ref = format === 'gzip with a SOCI index' ? `${ep.registry}/bench/app-soci:gzip` : `${ep.registry}/bench/app:${format}`;
      const store = [], plain = [];
      for (let i = 0; i < RUNS; i++) {
        const dir = join(work.path, `podman${pseq++}`);
        await mkdir(dir, { recursive: true });
        const stop = await startServe(dir);
        const viaStore = await setupPodman(join(dir, 'podman'), { insecureRegistry: ep.registry, layerStore: join(dir, 'layers') });
        const plainPodman = await setupPodman(join(dir, 'plain'), { insecureRegistry: ep.registry });
        // podman leaves its graph root bind-mounted: release it whatever happens.
        try {
          await dropCaches();
          store.push(await time(async () => {
            await viaStore.run(['pull', '-q', ref]);
            await viaStore.run(['run', '--rm', ref, 'cat', '/etc/os-release', '/etc/motd']);
          }));
          await stop();
          await dropCaches();
          plain.push(await time(async () => {
            await plainPodman.run(['pull', '-q', ref]);
            await plainPodman.run(['run', '--rm', ref, 'cat', '/etc/os-release', '/etc/motd']);
          }));
        } finally {
          await viaStore.cleanup();
          await stop();
          await plainPodman.cleanup();
          await rm(dir, { recursive: true, force: true });
        }
      }
      record(`10 podman pull + run (cat 2 files), ${format}: layer store ÷ plain storage (#18)`, profile, 's', store, plain, 's', format === 'gzip' ? undefined : atMost(0.3));
    }
  }

  // 11: while `regfs serve` indexes a gzip layer (fresh cache, first `ls -R` of its rootfs), the
  // latency of 4 KiB random reads (fio) of another blob it has cached: a pass must not stall the
  // daemon's other readers (#15: p99 < 20 ms). Loopback: the CPU, not the network, is measured.
  if (want(11) && !wan) {
    for (let i = 0; i < RUNS; i++) {
      const { dir, store, cfg } = await serveConfig(`pass${i}`, { logLevel: 'warn' });
      const child = spawn('node', [CLI, 'serve', '--config', cfg], { stdio: ['ignore', 'pipe', 'ignore'] });
      const exited = new Promise((r) => child.once('exit', r));
      let out = '';
      child.stdout.on('data', (d) => (out += d));
      try {
        await waitFor('regfs serve', async () => out.includes('regfs: serving'));
        const cached = join(store, ep.registry, 'bench/big/v1/blobs', bigDigest);
        await sh(`dd if=${q(cached)} of=/dev/null bs=1M count=256 status=none`);
        const t0 = performance.now();
        let passSecs;
        const pass = sh(`ls -R ${q(join(store, ep.registry, 'bench/gz/latest/rootfs'))} > /dev/null`).then(() => (passSecs = (performance.now() - t0) / 1000));
        const { stdout } = await run('fio', ['--name=r', `--filename=${cached.replace(/:/g, '\\:')}`, '--readonly', '--rw=randread', '--bs=4k', '--size=256m', '--ioengine=psync', '--numjobs=1', '--time_based', '--runtime=2', '--output-format=json'], { maxBuffer: 16 << 20 });
        const fioPassDone = passSecs !== undefined;
        await pass;
        if (fioPassDone) log(`11: the pass ended (${passSecs.toFixed(2)} s) before fio did: its latencies include idle time`);
        const clat = JSON.parse(stdout).jobs[0].read.clat_ns.percentile;
        put('pass p50 ms', clat['50.000000'] / 1e6);
        put('pass p99 ms', clat['99.000000'] / 1e6);
        put('pass secs', passSecs);
      } finally {
        child.kill('SIGTERM');
        await exited;
        await forceUnmount(store);
        await rm(dir, { recursive: true, force: true });
      }
    }
    record('11 cached 4 KiB reads while a gzip layer is indexed: p99', profile, 'ms', S['pass p99 ms'], undefined, 'ms', atMost(20));
    record('11 cached 4 KiB reads while a gzip layer is indexed: p50', profile, 'ms', S['pass p50 ms'], undefined, 'ms');
    record('11 the indexing pass (ls -R of the fresh gzip rootfs)', profile, 's', S['pass secs'], undefined, 's');
  }

  // 12: the longest stall a reader sees while `regfs serve` (keepMounts) hands its mount over to a
  // new process (an upgrade) and while a kill -9 is followed by a restart (#19). Loopback only:
  // the stall is the daemon's, not the network's. Readers: test/helpers/handover-readers.ts.
  if (want(12) && !wan) {
    for (let i = 0; i < RUNS; i++) {
      const { dir, store, cfg } = await serveConfig(`keep${i}`, { logLevel: 'info', keepMounts: true });
      const procs = [];
      const start = async () => {
        const child = spawn('node', [CLI, 'serve', '--config', cfg], { stdio: ['ignore', 'pipe', 'pipe'] });
        const p = { child, out: '', err: '', exited: new Promise((r) => child.once('exit', (code, sig) => r([code, sig]))) };
        child.stdout.on('data', (d) => (p.out += d));
        child.stderr.on('data', (d) => (p.err += d));
        procs.push(p);
        await waitFor('regfs serve', async () => p.out.includes('regfs: serving'));
        return p;
      };
      const tookOver = (p) => waitFor('the takeover', async () => p.err.includes('took over the live FUSE session'), 10_000);
      const image = join(store, ep.registry, 'bench/keep/v1/blobs');
      let readers;
      try {
        const a = await start();
        readers = await startReaders(dir, store, join(image, keep.digests[0]), keep.bigSha, join(image, keep.digests[1]), keep.slow);
        await new Promise((r) => setTimeout(r, 1500));
        const upgradeFrom = Date.now();
        const b = await start();
        await a.exited;
        await tookOver(b);
        await new Promise((r) => setTimeout(r, 1500));
        const crashFrom = Date.now();
        b.child.kill('SIGKILL');
        await b.exited;
        const c = await start();
        await tookOver(c);
        await new Promise((r) => setTimeout(r, 1500));
        const seen = await readers.stop();
        readers = undefined;
        if (seen.errors.length || seen.bad_passes || seen.slow_bad || (await mountsAt(store)) !== 1) throw new Error(`a reader saw an error across the restarts: ${JSON.stringify(seen.errors.slice(0, 3))}`);
        put('keep upgrade stall', longest(seen.stalls, upgradeFrom, crashFrom));
        put('keep crash stall', longest(seen.stalls, crashFrom, Date.now()));
      } finally {
        if (readers) await readers.stop().catch(() => {});
        for (const p of procs) if (p.child.exitCode === null && p.child.signalCode === null) p.child.kill('SIGTERM');
        for (const p of procs) await p.exited;
        await forceUnmount(store);
        await rm(dir, { recursive: true, force: true });
      }
    }
    record('12 longest reader stall across a graceful handover (serve, keepMounts)', profile, 'ms', S['keep upgrade stall'], undefined, 'ms');
    record('12 longest reader stall across kill -9 + restart (serve, keepMounts)', profile, 'ms', S['keep crash stall'], undefined, 'ms');
  }

  // ---------- rows (targets: issue #16 "Done means") ----------
  const g = (k) => S[k];
  if (want(1)) {
    for (const [, , name] of seqBlobs) {
      record(`1 cold sequential ${name} ÷ rclone`, profile, 'MB/s', g(`regfs cold ${name}`), g(`rclone cold ${name}`), 'MB/s', atLeast(1.0));
      record(`1 cold sequential ${name} ÷ curl`, profile, 'MB/s', g(`regfs cold ${name}`), g(`curl ${name}`), 'MB/s', atLeast(wan ? 2.5 : 0.7));
      record(`1 rclone cold sequential ${name} ÷ curl`, profile, 'MB/s', g(`rclone cold ${name}`), g(`curl ${name}`), 'MB/s');
    }
  }
  if (want(2)) {
    record('2 warm sequential layer ÷ rclone', profile, 'MB/s', g('regfs warm layer'), g('rclone warm layer'), 'MB/s', atLeast(1.0));
    record('2 warm sequential layer ÷ local file', profile, 'MB/s', g('regfs warm layer'), g('local warm layer'), 'MB/s');
  }
  if (want(3)) {
    record('3 warm random 4 KiB (fio, 1 job) ÷ local file', profile, 'IOPS', g('regfs warm 4k'), g('local warm 4k'), 'IOPS', atLeast(0.5));
    record('3 warm random 4 KiB ÷ rclone', profile, 'IOPS', g('regfs warm 4k'), g('rclone warm 4k'), 'IOPS');
  }
  if (want(4)) {
    record('4 cold random 4 KiB ÷ rclone', profile, 'IOPS', g('regfs cold rand iops'), g('rclone cold rand iops'), 'IOPS');
    record('4 cold random 4 KiB: KiB fetched per read', profile, 'KiB', g('regfs cold rand KiB/read'), undefined, 'KiB', atMost(128));
    record('4 cold random 4 KiB: latency p50', profile, 'ms', g('regfs cold rand p50'), undefined, 'ms', wan ? atMost(2 * DELAY + 5) : undefined);
    record('4 rclone cold random 4 KiB: latency p50', profile, 'ms', g('rclone cold rand p50'), undefined, 'ms');
  }
  if (want(5)) {
    record('5 4 cold readers ÷ 1 reader', profile, 'MB/s', g('regfs 4 readers'), g('regfs 1 reader'), 'MB/s', atLeast(2));
    record('5 4 cold readers ÷ 4 curls', profile, 'MB/s', g('regfs 4 readers'), g('curl 4 readers'), 'MB/s');
  }
  if (want(6)) record(`6 ls -lR warm (${treeLines} lines) ÷ local`, profile, 's', g('regfs ls -lR'), g('local ls -lR'), 's', { text: '≤ 0.4 s', test: (r) => r.a.median <= 0.4 });
  if (want(7)) {
    record('7 eStargz fresh mount → bash --version + os-release', profile, 's', g('esgz first work'), undefined, 's', atMost(0.8));
    record('7 eStargz mount ready', profile, 's', g('esgz ready'), undefined, 's', atMost(0.4));
    record('7 eStargz bytes fetched', profile, 'MB', g('esgz MB fetched'), undefined, 'MB');
  }
  if (want(8)) {
    const name = wan ? 'layer' : '1 GiB';
    record(`8 daemon CPU per GB cold (${name}) ÷ rclone`, profile, 's/GB', g(`regfs cpu ${name}`), g(`rclone cpu ${name}`), 's/GB', atMost(1.5));
    if (!wan) record('8 daemon peak RSS streaming 1 GiB cold', profile, 'MB', g('regfs rss 1 GiB'), undefined, 'MB', atMost(150));
  }
  if (want(9)) {
    record('9 bash + os-release from a fresh eStargz mount ÷ full pull', profile, 's', g('first esgz'), g('pull'), 's', atMost(0.1));
    record('9 bash + os-release from a fresh gzip mount ÷ full pull', profile, 's', g('first gz'), g('pull'), 's', atMost(0.6));
    record('9 bash + os-release from a fresh gzip mount with a SOCI index ÷ full pull', profile, 's', g('first soci'), g('pull'), 's', atMost(0.15));
    record('9 SOCI mount: bytes fetched (all blobs, zTOC included)', profile, 'MB', g('first soci MB'), undefined, 'MB');
    record('9 bash + os-release from a fresh gzip mount with a profile recorded by an earlier run, chunk cache cleared (layer index kept) ÷ full pull', profile, 's', g('first gz profiled'), g('pull'), 's', atMost(0.25));
    record('9 gzip mount with a profile, chunk cache cleared: bytes fetched', profile, 'MB', g('first gz profiled MB'), undefined, 'MB');
    record('9 bash + os-release from a fresh zstd:chunked mount ÷ full pull', profile, 's', g('first zc'), g('pull'), 's', atMost(0.1));
    record('9 bash + os-release: fresh zstd:chunked mount ÷ fresh eStargz mount', profile, 's', g('first zc'), g('first esgz'), 's');
  }
}

// ---------- output ----------
await mkdir(OUT, { recursive: true });
const stamp = new Date().toISOString().replace(/[:.]/g, '-');
const machine = { cpus: cpus().length, cpu: cpus()[0]?.model, memGiB: +(totalmem() / 1024 ** 3).toFixed(1), node: process.version, kernel: (await run('uname', ['-r'])).stdout.trim(), date: new Date().toISOString(), layerMB: +(layer.size / MB).toFixed(1) };
await writeFile(join(OUT, `samples-${stamp}.json`), JSON.stringify({ machine, runs: RUNS, delayMs: DELAY, rate: RATE, samples, results }, null, 2));
const lines = [
  '| # scenario | profile | regfs min/med/max | baseline min/med/max | ratio (median) | target | met |',
  '|---|---|---|---|---|---|---|',
  ...results.map((r) => `| ${r.scenario} | ${r.profile} | ${f2(r.a.min)}/${f2(r.a.median)}/${f2(r.a.max)} ${r.unit} | ${r.b ? `${f2(r.b.min)}/${f2(r.b.median)}/${f2(r.b.max)} ${r.unit}` : '–'} | ${r.ratio ? r.ratio.median.toFixed(2) : '–'} | ${r.target?.text ?? 'report'} | ${r.met === undefined ? '' : r.met ? 'yes' : '**no**'} |`),
];
console.log(lines.join('\n'));
await writeFile(join(OUT, 'table.md'), `Machine: ${JSON.stringify(machine)}\n\n${lines.join('\n')}\n`);
log(`wrote ${OUT}/samples-${stamp}.json and ${OUT}/table.md`);
await cleanup();
await work.cleanup();
process.exit(0);
