#!/usr/bin/env node
// npm run bench [-- --profile loopback|wan|both --runs 5 --delay-ms 10 --rate 40MiB --quick]
//
// regfs measured side by side with what a user would use instead (curl, cat, fio, a full pull,
// rclone mount), on one machine, in one run, as ratios. Every figure is the median of --runs
// samples with A and B interleaved; min/median/max are printed. Everything runs on loopback: a
// real docker-registry with the redirect storage middleware, a Range-capable blob server, a
// token service, and for --profile wan a shaping TCP proxy (delay each way + per-connection cap).
import { execFile, spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { cp, mkdir, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { cpus, totalmem } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);
const ROOT = new URL('..', import.meta.url).pathname;
const H = (m) => import(join(ROOT, 'dist-test/test/helpers', m));
const { startRegistry } = await H('registry.js');
const { startStaticServer } = await H('static-server.js');
const { startShapingProxy } = await H('shaping-proxy.js');
const { startFaultProxy } = await H('fault-proxy.js');
const { startTokenService } = await H('token-service.js');
const { buildImage, blobPath, describeLayout, pushBlob, pushImage, pushRawImage, pushManifest, patternBytes } = await H('images.js');
const { startMount, forceUnmount, parsePrometheus } = await H('mount.js');
const { tempDir, freePort } = await H('tmp.js');
const CLI = join(ROOT, 'dist/cli/main.js');

// ---------- arguments ----------
const args = process.argv.slice(2);
const arg = (name, d) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? args[i + 1] : d;
};
const RUNS = Number(arg('runs', args.includes('--quick') ? 3 : 5));
const PROFILES = (arg('profile', 'both') === 'both' ? ['loopback', 'wan'] : [arg('profile')]);
const DELAY = Number(arg('delay-ms', 10));
const RATE = parseRate(arg('rate', '40MiB'));
const OUT = join(ROOT, arg('out', 'bench-results'));
// --scenarios 1,5: run only these (the set-up is shared and always done).
const ONLY = arg('scenarios') ? new Set(arg('scenarios').split(',').map(Number)) : undefined;
const want = (n) => !ONLY || ONLY.has(n);
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

const samples = []; // every measurement, for the JSON file
const results = []; // one row per scenario/profile/metric
function record(scenario, profile, metric, a, b, unit, target, higherIsBetter = true) {
  const row = { scenario, profile, metric, unit, a: stats(a), b: b ? stats(b) : undefined, target };
  if (b) {
    // Ratios of interleaved pairs, then their median: robust to drift on a shared machine.
    const ratios = a.map((x, i) => (higherIsBetter ? x / b[i] : x / b[i]));
    row.ratio = stats(ratios);
  }
  row.met = target === undefined ? undefined : target.test(row);
  results.push(row);
  samples.push({ scenario, profile, metric, a, b });
  log(`${scenario} ${profile} ${metric}: ${fmt(row)}`);
}
const fmt = (row) => {
  const f = (s) => `${s.min.toFixed(2)}/${s.median.toFixed(2)}/${s.max.toFixed(2)}`;
  return `${f(row.a)}${row.b ? ` vs ${f(row.b)} ${row.unit}; ratio ${f(row.ratio)}` : ` ${row.unit}`}`;
};
const atLeast = (x) => ({ text: `≥ ${x}`, test: (r) => (r.ratio ?? r.a).median >= x });
const atMost = (x, onA = false) => ({ text: `≤ ${x}`, test: (r) => (onA ? r.a : r.ratio ?? r.a).median <= x });
const exactly = (x) => ({ text: `= ${x}`, test: (r) => r.a.min === x && r.a.max === x });

// ---------- set-up ----------
const work = await tempDir('bench');
const cleanups = [];
process.on('SIGINT', async () => {
  for (const c of cleanups.reverse()) await c().catch(() => {});
  process.exit(130);
});
const storage = join(work.path, 'storage');
log(`work dir ${work.path}; profiles ${PROFILES.join(', ')}; ${RUNS} runs; wan = ${DELAY} ms each way, ${RATE / MB} MB/s per connection`);
const statik = await startStaticServer(storage);
cleanups.push(statik.close);
const open = await startRegistry({ root: storage, workDir: work.path });
cleanups.push(open.stop);

log('building the gzip image from real files (+ incompressible data to reach 100 MB compressed)');
const rootfsSpec = async (r) => {
  await mkdir(join(r, 'usr/bin'), { recursive: true });
  await mkdir(join(r, 'etc'), { recursive: true });
  await cp('/usr/bin/bash', join(r, 'usr/bin/bash'));
  await cp('/etc/os-release', join(r, 'etc/os-release'), { dereference: true });
  for (const d of ['/usr/lib/gcc', '/usr/libexec']) await cp(d, join(r, d.slice(1)), { recursive: true, verbatimSymlinks: true }).catch(() => {});
  await mkdir(join(r, 'data'), { recursive: true });
  for (let i = 0; i < 14; i++) await writeFile(join(r, 'data', `blob${i}`), patternBytes(4 << 20, 900 + i));
};
const gzImage = await buildImage(work.path, 'benchgz', [rootfsSpec]);
await pushImage(gzImage, open.host, 'bench/gz');
const layer = gzImage.layers[0];
log(`gzip layer ${layer.digest} is ${(layer.size / MB).toFixed(1)} MB`);

log('converting the same rootfs to eStargz with the reference converter');
const convert = join(work.path, 'estargz-convert');
await run(join(ROOT, 'scripts/build-estargz-convert.sh'), [convert]);
const stage = join(work.path, 'stage');
await rootfsSpec(stage);
await run('tar', ['cf', join(work.path, 'rootfs.tar'), '-C', stage, '.']);
await rm(stage, { recursive: true, force: true });
const esgzOut = join(work.path, 'layer.esgz');
const conv = JSON.parse((await run(convert, [join(work.path, 'rootfs.tar'), esgzOut, 'usr/bin/bash', 'etc/os-release'])).stdout);
await pushRawImage(open.url, 'bench/esgz', 'v1', [{ data: await readFile(esgzOut), mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', annotations: { 'containerd.io/snapshot/stargz/toc.digest': conv.tocDigest } }]);
await rm(join(work.path, 'rootfs.tar'));

log('converting the gzip image to zstd:chunked with skopeo');
{
  const zc = join(work.path, 'zc');
  await run('skopeo', ['copy', '--quiet', '--dest-compress', '--dest-compress-format', 'zstd:chunked', `oci:${gzImage.layout}:${gzImage.tag}`, `oci:${zc}:latest`]);
  const zcImage = await describeLayout(zc, 'latest');
  const manifest = JSON.parse(await readFile(blobPath(zc, zcImage.manifestDigest), 'utf8'));
  const zcLayers = await Promise.all(manifest.layers.map(async (l) => ({ data: await readFile(blobPath(zc, l.digest)), mediaType: l.mediaType, annotations: l.annotations })));
  await pushRawImage(open.url, 'bench/zc', 'v1', zcLayers);
  log(`zstd:chunked layer is ${(zcLayers[0].data.length / MB).toFixed(1)} MB`);
}

log('pushing a 1 GB random blob');
const bigPath = join(work.path, 'big.bin');
{
  const ws = createWriteStream(bigPath);
  const h = createHash('sha256');
  for (let i = 0; i < 1024; i++) {
    const b = randomBytes(1 << 20);
    h.update(b);
    if (!ws.write(b)) await new Promise((r) => ws.once('drain', r));
  }
  await new Promise((r) => ws.end(r));
  var bigDigest = `sha256:${h.digest('hex')}`;
  const startUp = await fetch(`${open.url}/v2/bench/big/blobs/uploads/`, { method: 'POST' });
  const loc = new URL(startUp.headers.get('location'), open.url);
  loc.searchParams.set('digest', bigDigest);
  const put = await fetch(loc, { method: 'PUT', body: createReadStream(bigPath), duplex: 'half', headers: { 'content-type': 'application/octet-stream' } });
  if (put.status !== 201) throw new Error(`1 GB upload: HTTP ${put.status}`);
  const config = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [bigDigest] } }));
  const cfgDigest = await pushBlob(open.url, 'bench/big', config);
  await pushManifest(open.url, 'bench/big', 'v1', JSON.stringify({
    schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json',
    config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: cfgDigest, size: config.length },
    layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar', digest: bigDigest, size: 1 << 30 }],
  }), 'application/vnd.oci.image.manifest.v1+json');
}
// Scenario 6's SOCI variant (#14): a SOCI-enabled image of the same gzip image, built once
// with regfs's own `index push` (not timed: the index is built once per image, not per mount).
if (want(6)) {
  log('pushing a SOCI index for the gzip image (regfs index push --tag soci)');
  await run(join(ROOT, 'dist/cli/main.js'), ['index', 'push', `${open.host}/bench/gz`, '--tag', 'soci', '--cache-dir', join(work.path, 'cache-soci-build'), '--log-level', 'warn']);
}
// A local copy of the layer for the cat/fio baselines.
const localLayer = join(work.path, 'layer.local');
await cp(join(storage, 'docker/registry/v2/blobs/sha256', layer.digest.slice(7, 9), layer.digest.slice(7), 'data'), localLayer);

const tokenWork = join(work.path, 'token');
await mkdir(tokenWork, { recursive: true });
const tokens = await startTokenService({ workDir: tokenWork, service: 'bench', issuer: 'bench-issuer' });
cleanups.push(tokens.close);

/** The endpoints of one network profile: registries behind the shaper when wan. */
async function profileEndpoints(profile) {
  const shape = async (host, port) => {
    if (profile === 'loopback') return `${host}:${port}`;
    const s = await startShapingProxy({ host, port }, { delayMs: DELAY, bytesPerSec: RATE });
    cleanups.push(s.close);
    return s.host;
  };
  const blobHost = await shape('127.0.0.1', statik.port);
  const reg = await startRegistry({ root: storage, workDir: work.path, redirectBaseUrl: `http://${blobHost}/` });
  cleanups.push(reg.stop);
  const tokReg = await startRegistry({
    root: storage, workDir: work.path, redirectBaseUrl: `http://${blobHost}/`,
    auth: { kind: 'token', realm: tokens.realm, service: 'bench', issuer: 'bench-issuer', certPath: tokens.certPath },
  });
  cleanups.push(tokReg.stop);
  const counter = await startFaultProxy(tokReg.url);
  cleanups.push(counter.close);
  return {
    registry: await shape('127.0.0.1', reg.port),
    tokenRegistry: await shape('127.0.0.1', counter.port),
    tokenCounter: counter,
    blobHost,
  };
}

let mountSeq = 0;
async function withMount(ref, extra, fn) {
  const mnt = join(work.path, `mnt${mountSeq}`);
  const cache = join(work.path, `cache${mountSeq++}`);
  await mkdir(mnt, { recursive: true });
  const port = await freePort();
  const m = await startMount(ref, mnt, ['--cache-dir', cache, '--log-level', 'warn', '--metrics', `127.0.0.1:${port}`, ...extra]);
  cleanups.push(() => forceUnmount(mnt));
  const metrics = async () => parsePrometheus(await (await fetch(`http://127.0.0.1:${port}/metrics`)).text());
  try {
    const out = await fn({ mnt, cache, pid: m.child.pid, metrics });
    // A benchmark of wrong bytes is worthless: stop if any blob failed its digest check.
    const after = await metrics();
    if ((after.get('regfs_blobs_purged_total') ?? 0) > 0) throw new Error(`a blob failed verification during the run (${ref})`);
    return out;
  } finally {
    await m.stop();
    await rm(cache, { recursive: true, force: true });
  }
}

const layerFile = (mnt) => join(mnt, 'blobs', layer.digest);
const ddTime = (file) => time(() => sh(`dd if='${file}' of=/dev/null bs=1M status=none`));

// ---------- scenarios ----------
for (const profile of PROFILES) {
  const ep = await profileEndpoints(profile);
  const gzRef = `${ep.registry}/bench/gz`;
  const blobUrl = `http://${ep.registry}/v2/bench/gz/blobs/${layer.digest}`;
  log(`--- profile ${profile} ---`);

  // 1-3: cold, warm, hot sequential reads of the layer blob.
  if (want(1) || want(2) || want(3)) {
  const s1 = { a: [], b: [] }, s2 = { a: [], b: [] }, s3 = { a: [], b: [] };
  for (let i = 0; i < RUNS; i++) {
    await dropCaches();
    s1.b.push(layer.size / MB / (await time(() => sh(`curl -sfL -o /dev/null '${blobUrl}'`))));
    await withMount(gzRef, [], async ({ mnt, cache }) => {
      await dropCaches();
      s1.a.push(layer.size / MB / (await ddTime(layerFile(mnt))));
      const chunkGlob = `${cache}/chunks/*/sha256-${layer.digest.slice(7)}-c*`;
      await dropCaches();
      s2.b.push(layer.size / MB / (await time(() => sh(`cat ${chunkGlob} > /dev/null`))));
      await dropCaches();
      s2.a.push(layer.size / MB / (await ddTime(layerFile(mnt))));
      await sh(`cat '${localLayer}' > /dev/null`);
      s3.b.push(layer.size / MB / (await time(() => sh(`cat '${localLayer}' > /dev/null`))));
      s3.a.push(layer.size / MB / (await ddTime(layerFile(mnt))));
    });
  }
  record('1 cold sequential read ÷ curl', profile, 'throughput', s1.a, s1.b, 'MB/s', atLeast(profile === 'wan' ? 2.0 : 0.4));
  record('2 warm (chunks on disk) ÷ cat of chunk files', profile, 'throughput', s2.a, s2.b, 'MB/s', atLeast(0.5));
  record('3 hot (page cache) ÷ cat of a local copy', profile, 'throughput', s3.a, s3.b, 'MB/s', atLeast(0.9));
  }

  // 4: fio random reads, cold and warm, against fio on a local copy.
  for (const bs of want(4) ? ['4k', '128k'] : []) {
    // --invalidate=0: fio would otherwise drop the file's page cache first, so "warm" would
    // measure neither a user's warm file nor the local copy's.
    const fio = async (file, invalidate = true) => {
      // fio splits --filename at ':' unless escaped; digests contain one.
      const { stdout } = await run('fio', ['--name=r', `--filename=${file.replace(/:/g, '\\:')}`, '--readonly', '--rw=randread', `--bs=${bs}`, '--ioengine=psync', '--numjobs=4', '--group_reporting', '--time_based', '--runtime=2', `--invalidate=${invalidate ? 1 : 0}`, '--output-format=json'], { maxBuffer: 16 << 20 });
      return JSON.parse(stdout).jobs[0].read.iops;
    };
    const cold = [], warm = [], local = [];
    for (let i = 0; i < RUNS; i++) {
      await withMount(gzRef, [], async ({ mnt }) => {
        await dropCaches();
        cold.push(await fio(layerFile(mnt)));
        // Warm as a user meets it after one full read: chunks on disk, page cache as it is,
        // like the local copy it is compared with.
        await sh(`cat '${layerFile(mnt)}' > /dev/null`);
        warm.push(await fio(layerFile(mnt), false));
      });
      await sh(`cat '${localLayer}' > /dev/null`);
      local.push(await fio(localLayer, false));
    }
    record(`4 random ${bs} reads, cold`, profile, 'IOPS', cold, undefined, 'IOPS');
    record(`4 random ${bs} reads, warm ÷ local copy`, profile, 'IOPS', warm, local, 'IOPS');
  }

  // 5: 64 concurrent cold readers on the token registry.
  if (want(5)) {
    const toks = [], unauth = [], thr = [];
    for (let i = 0; i < RUNS; i++) {
      const t0 = tokens.requests.length;
      const r0 = ep.tokenCounter.requests.length;
      await withMount(`${ep.tokenRegistry}/bench/gz`, [], async ({ mnt }) => {
        const chunk = Math.floor(layer.size / 64 / (1 << 20));
        // One shell starts the 64 readers: spawning 64 processes from this (large) Node process
        // costs ~25 ms each, serialised, and would be what gets measured.
        const secs = await time(() => sh(`for k in $(seq 0 63); do dd if='${layerFile(mnt)}' of=/dev/null bs=1M skip=$((k * ${chunk})) count=${chunk} status=none & done; wait`));
        thr.push((64 * chunk * (1 << 20)) / MB / secs);
      });
      toks.push(tokens.requests.length - t0);
      unauth.push(ep.tokenCounter.requests.slice(r0).filter((r) => !r.headers.authorization).length);
    }
    record('5 64 cold readers, token registry: token requests', profile, 'count', toks, undefined, 'requests', exactly(1));
    record('5 64 cold readers: unauthenticated (401) requests', profile, 'count', unauth, undefined, 'requests');
    record('5 64 cold readers: throughput', profile, 'throughput', thr, undefined, 'MB/s');
  }

  // 6: first bytes of a fresh mount vs a full pull.
  if (want(6)) {
    const pull = [], esgz = [], gz = [], zc = [], soci = [], sociBytes = [];
    for (let i = 0; i < RUNS; i++) {
      const dest = join(work.path, `pull${i}`);
      await dropCaches();
      pull.push(await time(async () => {
        await run('skopeo', ['copy', '--quiet', '--src-tls-verify=false', `docker://${ep.registry}/bench/gz`, `oci:${dest}:x`]);
        await run('umoci', ['unpack', '--image', `${dest}:x`, `${dest}-bundle`]);
        await sh(`cat ${dest}-bundle/rootfs/usr/bin/bash ${dest}-bundle/rootfs/etc/os-release > /dev/null`);
      }));
      await rm(dest, { recursive: true, force: true });
      await rm(`${dest}-bundle`, { recursive: true, force: true });
      for (const [ref, out, bytes] of [[`${ep.registry}/bench/esgz:v1`, esgz], [`${ep.registry}/bench/zc:v1`, zc], [gzRef, gz], [`${ep.registry}/bench/gz:soci`, soci, sociBytes]]) {
        await dropCaches();
        const t0 = performance.now();
        await withMount(ref, [], async ({ mnt, metrics }) => {
          await sh(`cat '${mnt}/rootfs/usr/bin/bash' '${mnt}/rootfs/etc/os-release' > /dev/null`);
          out.push((performance.now() - t0) / 1000);
          bytes?.push(((await metrics()).get('regfs_fetched_bytes_total') ?? 0) / MB);
        });
      }
    }
    record('6 bash + os-release from a fresh eStargz mount ÷ full pull', profile, 'seconds', esgz, pull, 's', atMost(0.1), false);
    record('6 bash + os-release from a fresh gzip mount ÷ full pull', profile, 'seconds', gz, pull, 's', undefined, false);
    record('6 bash + os-release from a fresh gzip mount with a SOCI index ÷ full pull', profile, 'seconds', soci, pull, 's', atMost(0.15), false);
    record('6 SOCI mount: bytes fetched (all blobs, zTOC included)', profile, 'MB', sociBytes, undefined, 'MB');
    record('6 bash + os-release from a fresh zstd:chunked mount ÷ full pull', profile, 'seconds', zc, pull, 's', atMost(0.1), false);
    record('6 bash + os-release: fresh zstd:chunked mount ÷ fresh eStargz mount', profile, 'seconds', zc, esgz, 's', undefined, false);
  }

  // 7: rclone mount of the same blob over plain HTTP, vfs-cache-mode full.
  if (want(7)) {
    const cold = [], warm = [], rcold = [], rwarm = [];
    const dirUrl = `http://${ep.blobHost}/docker/registry/v2/blobs/sha256/${layer.digest.slice(7, 9)}/${layer.digest.slice(7)}/`;
    for (let i = 0; i < RUNS; i++) {
      const rmnt = join(work.path, `rclone${i}`);
      const rcache = join(work.path, `rclone-cache${i}`);
      await mkdir(rmnt, { recursive: true });
      const rc = spawn('rclone', ['mount', ':http:', rmnt, '--http-url', dirUrl, '--vfs-cache-mode', 'full', '--cache-dir', rcache, '--read-only', '--dir-cache-time', '1h'], { stdio: 'ignore' });
      cleanups.push(() => forceUnmount(rmnt));
      for (let k = 0; k < 100 && !(await readdir(rmnt).catch(() => [])).includes('data'); k++) await new Promise((r) => setTimeout(r, 100));
      await dropCaches();
      rcold.push(layer.size / MB / (await ddTime(join(rmnt, 'data'))));
      await dropCaches();
      rwarm.push(layer.size / MB / (await ddTime(join(rmnt, 'data'))));
      rc.kill('SIGTERM');
      await new Promise((r) => rc.once('exit', r));
      await forceUnmount(rmnt);
      await rm(rcache, { recursive: true, force: true });
      await withMount(gzRef, [], async ({ mnt }) => {
        await dropCaches();
        cold.push(layer.size / MB / (await ddTime(layerFile(mnt))));
        await dropCaches();
        warm.push(layer.size / MB / (await ddTime(layerFile(mnt))));
      });
    }
    record('7 cold read ÷ rclone mount (vfs full)', profile, 'throughput', cold, rcold, 'MB/s', atLeast(3));
    record('7 warm read ÷ rclone mount (vfs full)', profile, 'throughput', warm, rwarm, 'MB/s', atLeast(3));
  }

  // 8: daemon peak RSS while streaming 1 GB cold.
  if (want(8)) {
    const rss = [], thr = [];
    for (let i = 0; i < RUNS; i++) {
      await withMount(`${ep.registry}/bench/big:v1`, [], async ({ mnt, pid }) => {
        await dropCaches();
        thr.push((1 << 30) / MB / (await ddTime(join(mnt, 'blobs', bigDigest))));
        const status = await readFile(`/proc/${pid}/status`, 'utf8');
        rss.push(Number(/VmHWM:\s+(\d+) kB/.exec(status)[1]) / 1024);
      });
    }
    record('8 daemon peak RSS streaming 1 GB cold', profile, 'MB', rss, undefined, 'MB', atMost(150, true), false);
    record('8 1 GB cold stream throughput', profile, 'throughput', thr, undefined, 'MB/s');
  }
}

// ---------- output ----------
await mkdir(OUT, { recursive: true });
const stamp = new Date().toISOString().replace(/[:.]/g, '-');
const machine = { cpus: cpus().length, cpu: cpus()[0]?.model, memGiB: +(totalmem() / 1024 ** 3).toFixed(1), node: process.version, kernel: (await run('uname', ['-r'])).stdout.trim(), date: new Date().toISOString() };
await writeFile(join(OUT, `samples-${stamp}.json`), JSON.stringify({ machine, runs: RUNS, delayMs: DELAY, rate: RATE, samples, results }, null, 2));
const f2 = (n) => (n >= 100 ? n.toFixed(0) : n.toFixed(2));
const lines = [
  '| # scenario | profile | regfs min/med/max | baseline min/med/max | ratio (median) | target | met |',
  '|---|---|---|---|---|---|---|',
  ...results.map((r) => `| ${r.scenario} | ${r.profile} | ${f2(r.a.min)}/${f2(r.a.median)}/${f2(r.a.max)} ${r.unit} | ${r.b ? `${f2(r.b.min)}/${f2(r.b.median)}/${f2(r.b.max)} ${r.unit}` : '–'} | ${r.ratio ? r.ratio.median.toFixed(2) : '–'} | ${r.target?.text ?? 'report'} | ${r.met === undefined ? '' : r.met ? 'yes' : '**no**'} |`),
];
console.log(lines.join('\n'));
// A bar chart of the ratios (and single values), one bar per scenario and profile.
const bars = results.filter((r) => r.ratio);
const W = 900, rowH = 22, left = 430;
const maxR = Math.max(...bars.map((r) => r.ratio.median), 1);
const svg = [`<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${bars.length * rowH + 40}" font-family="sans-serif" font-size="12">`, `<text x="10" y="16" font-weight="bold">regfs ÷ baseline (median of ${RUNS}; dashed line = 1)</text>`];
bars.forEach((r, i) => {
  const y = 28 + i * rowH;
  const w = ((W - left - 60) * r.ratio.median) / maxR;
  svg.push(`<text x="10" y="${y + 14}">${r.scenario.replace(/&/g, '&amp;').replace(/</g, '&lt;')} (${r.profile})</text>`);
  svg.push(`<rect x="${left}" y="${y + 3}" width="${w.toFixed(1)}" height="${rowH - 6}" fill="${r.met === false ? '#d9534f' : r.profile === 'wan' ? '#5b8def' : '#4caf50'}"/>`);
  svg.push(`<text x="${left + w + 4}" y="${y + 14}">${r.ratio.median.toFixed(2)}</text>`);
});
const one = left + (W - left - 60) / maxR;
svg.push(`<line x1="${one}" y1="24" x2="${one}" y2="${bars.length * rowH + 30}" stroke="#333" stroke-dasharray="4 3"/>`, '</svg>');
await writeFile(join(OUT, 'ratios.svg'), svg.join('\n'));
await writeFile(join(OUT, 'table.md'), `Machine: ${JSON.stringify(machine)}\n\n${lines.join('\n')}\n`);
log(`wrote ${OUT}/samples-${stamp}.json, ${OUT}/table.md, ${OUT}/ratios.svg`);
for (const c of cleanups.reverse()) await c().catch(() => {});
await work.cleanup();
process.exit(0);
