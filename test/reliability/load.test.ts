import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { open, mkdir, readFile, readdir, readlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { type FaultProxy, startFaultProxy } from '../helpers/fault-proxy.js';
import { buildSmallImage } from '../helpers/fixture-image.js';
import { patternBytes, pushImage, pushRawImage } from '../helpers/images.js';
import { CLI, forceUnmount, startMount } from '../helpers/mount.js';
import { type RunningRegistry, startRegistry } from '../helpers/registry.js';
import { observe } from '../helpers/results.js';
import { tempDir } from '../helpers/tmp.js';

const run = promisify(execFile);
const MiB = 1 << 20;
const DURATION_MS = Number(process.env['REGFS_LOAD_SECONDS'] ?? 60) * 1000;
const READERS = 256;
const BUDGET_S = 5;

let dir: { path: string; cleanup: () => Promise<void> };
let reg: RunningRegistry;
let proxy: FaultProxy;
const stops: (() => Promise<void>)[] = [];
const blobs: { digest: string; data: Buffer }[] = [];
/** rootfs path → expected bytes, for two images. */
const files: { path: string; data: Buffer }[] = [];

before(async () => {
  dir = await tempDir('load');
  reg = await startRegistry({ root: join(dir.path, 'storage'), workDir: dir.path });
  stops.push(reg.stop);
  const datas = Array.from({ length: 8 }, (_v, i) => patternBytes((4 + i * 3) * MiB + 12345 * i, 7000 + i));
  const img = await pushRawImage(reg.url, 'load/blobs', 'v1', datas);
  img.layers.forEach((l, i) => blobs.push({ digest: l.digest, data: datas[i]! }));
  for (const name of ['one', 'two']) {
    const built = await buildSmallImage(dir.path, `load-${name}`);
    await pushImage(built, reg.host, `load/${name}`);
  }
  proxy = await startFaultProxy(reg.url);
  stops.push(proxy.close);
});

after(async () => {
  for (const s of stops.reverse()) await s().catch(() => {});
  await dir?.cleanup();
});

async function walk(root: string, rel = ''): Promise<string[]> {
  const out: string[] = [];
  for (const e of await readdir(join(root, rel), { withFileTypes: true })) {
    const p = rel ? `${rel}/${e.name}` : e.name;
    if (e.isDirectory()) out.push(...(await walk(root, p)));
    else if (e.isFile()) out.push(p);
  }
  return out;
}

test(`load: ${READERS} readers over 8 blobs and two rootfs for ${DURATION_MS / 1000} s with random faults: 0 wrong bytes`, async () => {
  const mk = async (name: string, ref: string) => {
    const mnt = join(dir.path, name);
    await mkdir(mnt, { recursive: true });
    const m = await startMount(ref, mnt, ['--cache-dir', join(dir.path, `cache-${name}`), '--cache-size', '8MiB', '--chunk-size', '256KiB', '--retry-budget', `${BUDGET_S}s`, '--log-level', 'warn']);
    stops.push(async () => {
      await m.stop();
      await forceUnmount(mnt);
    });
    return { mnt, m };
  };
  const blobMount = await mk('blobs', `${proxy.host}/load/blobs:v1`);
  const one = await mk('one', `${proxy.host}/load/one`);
  const two = await mk('two', `${proxy.host}/load/two`);
  // Ground truth for the rootfs files: the same files read before any fault.
  for (const m of [one, two]) {
    for (const p of await walk(join(m.mnt, 'rootfs'))) files.push({ path: join(m.mnt, 'rootfs', p), data: await readFile(join(m.mnt, 'rootfs', p)) });
  }
  assert.ok(files.length > 20);
  void readlink;

  // The kernel's page cache would answer most reads itself: drop it now and then so that reads
  // keep reaching the daemon, its disk cache (small, so chunks are evicted and fetched again)
  // and the faulty network.
  const dropper = setInterval(() => void writeFile('/proc/sys/vm/drop_caches', '3').catch(() => {}), 500);
  proxy.chaos(/\/blobs\//, 0.5, [
    { kind: 'reset', afterBytes: 50_000 },
    { kind: 'truncate', afterBytes: 20_000 },
    { kind: 'status', status: 503 },
    { kind: 'status', status: 500 },
    { kind: 'status', status: 429, headers: { 'retry-after': '1' } },
    { kind: 'wrong-content-range' },
    { kind: 'ignore-range' },
  ]);

  const pids = [blobMount.m.child.pid!, one.m.child.pid!, two.m.child.pid!];
  let peakRss = 0;
  let peakFds = 0;
  const sampler = setInterval(() => {
    void (async () => {
      for (const pid of pids) {
        const status = await readFile(`/proc/${pid}/status`, 'utf8').catch(() => '');
        const rss = Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0) / 1024;
        const fds = (await readdir(`/proc/${pid}/fd`).catch(() => [])).length;
        peakRss = Math.max(peakRss, rss);
        peakFds = Math.max(peakFds, fds);
      }
    })();
  }, 250);

  let reads = 0;
  let bytes = 0;
  let wrong = 0;
  let eio = 0;
  let slowest = 0;
  const until = Date.now() + DURATION_MS;
  const reader = async (k: number): Promise<void> => {
    let x = k * 2654435761;
    const rnd = (n: number): number => {
      x = (x * 1103515245 + 12345) >>> 0;
      return x % n;
    };
    while (Date.now() < until) {
      let path: string;
      let data: Buffer;
      if (rnd(3) === 0) {
        const f = files[rnd(files.length)]!;
        path = f.path;
        data = f.data;
      } else {
        const b = blobs[rnd(blobs.length)]!;
        path = join(blobMount.mnt, 'blobs', b.digest);
        data = b.data;
      }
      if (data.length === 0) continue;
      const off = rnd(data.length);
      const len = Math.min(data.length - off, 1 + rnd(256 * 1024));
      const buf = Buffer.alloc(len);
      const t0 = Date.now();
      try {
        const fh = await open(path, 'r');
        try {
          const { bytesRead } = await fh.read(buf, 0, len, off);
          if (!buf.subarray(0, bytesRead).equals(data.subarray(off, off + bytesRead)) || bytesRead === 0) wrong++;
          bytes += bytesRead;
        } finally {
          await fh.close();
        }
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'EIO') throw e;
        eio++;
      }
      slowest = Math.max(slowest, Date.now() - t0);
      reads++;
    }
  };
  await Promise.all(Array.from({ length: READERS }, (_v, k) => reader(k)));
  clearInterval(sampler);
  clearInterval(dropper);
  proxy.chaos(/x/, 0, []);
  const faulted = proxy.requests.filter((r) => r.fault !== undefined).length;

  // Still serving, and the caches are sound.
  for (const b of blobs) {
    const { stdout } = await run('sh', ['-c', `sha256sum < '${join(blobMount.mnt, 'blobs', b.digest)}'`]);
    assert.equal(`sha256:${stdout.split(' ')[0]}`, b.digest);
  }
  await blobMount.m.stop();
  const verify = await run('node', [CLI, 'cache', 'verify', '--cache-dir', join(dir.path, 'cache-blobs')]).then((r) => r.stdout, (e: { stdout: string }) => e.stdout);

  const summary = `${reads} reads, ${proxy.requests.length} HTTP requests, ${(bytes / MiB).toFixed(0)} MiB verified, ${wrong} wrong, ${eio} EIO, ${faulted} faults injected, slowest read ${(slowest / 1000).toFixed(1)} s, peak RSS ${peakRss.toFixed(0)} MB, peak fds ${peakFds}; cache verify: ${verify.trim().split('\n')[0]}`;
  console.log(`# ${summary}`);
  // Every injected fault is transient and retried within the budget, so a read fails only when
  // all its attempts for BUDGET_S seconds met a fault (p = 0.5 each): rare. At most 1 in 1000.
  const maxEio = Math.floor(reads / 1000);
  const ok = wrong === 0 && eio <= maxEio && slowest <= (BUDGET_S + 5) * 1000 && / 0 corrupt/.test(verify) && peakRss < 400 && peakFds < 1000;
  await observe({ group: 'load', case: `${READERS} readers, 8 blobs + 2 rootfs, ${DURATION_MS / 1000} s, random faults`, expected: `0 wrong bytes, EIO ≤ 1 per 1000 reads, no read over ${BUDGET_S + 5} s, RSS < 400 MB, fds < 1000, cache verify clean`, observed: summary, ok });
  assert.equal(wrong, 0);
  assert.ok(eio <= maxEio, `${eio} EIO in ${reads} reads (at most ${maxEio})`);
  assert.ok(ok, summary);
  assert.ok(faulted >= 20, `faults were injected (${faulted})`);
});
