import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdir, open, readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { type FaultProxy, startFaultProxy } from '../helpers/fault-proxy.js';
import { buildSmallImage } from '../helpers/fixture-image.js';
import { type BuiltImage, patternBytes, pushImage, pushRawImage } from '../helpers/images.js';
import { CLI, forceUnmount, isMounted, parsePrometheus, startMount, makeMountpoint } from '../helpers/mount.js';
import { type RunningRegistry, startRegistry } from '../helpers/registry.js';
import { freePort, tempDir, waitFor } from '../helpers/tmp.js';

const run = promisify(execFile);
const MiB = 1 << 20;
const BIG = patternBytes(100_000_000, 99);
const BIG_SHA = createHash('sha256').update(BIG).digest('hex');

let dir: { path: string; cleanup: () => Promise<void> };
let reg: RunningRegistry;
let proxy: FaultProxy;
let small: BuiltImage;
let big: Awaited<ReturnType<typeof pushRawImage>>;
let prefetched: Awaited<ReturnType<typeof pushRawImage>>;
const mounts: string[] = [];

before(async () => {
  dir = await tempDir('e2e-mount');
  reg = await startRegistry({ root: join(dir.path, 'storage'), workDir: dir.path });
  small = await buildSmallImage(dir.path);
  await pushImage(small, reg.host, 'e2e/small');
  big = await pushRawImage(reg.url, 'e2e/big', 'v1', [BIG, patternBytes(3 << 20, 5)]);
  prefetched = await pushRawImage(reg.url, 'e2e/prefetch', 'v1', [patternBytes(20 << 20, 6), patternBytes(4 << 20, 7)]);
  proxy = await startFaultProxy(reg.url);
});

after(async () => {
  for (const m of mounts) await forceUnmount(m);
  await proxy?.close();
  await reg?.stop();
  await dir?.cleanup();
});

const mountpoint = (name: string): Promise<string> => makeMountpoint(dir.path, name, mounts);

const common = (name: string): string[] => ['--cache-dir', join(dir.path, `cache-${name}`), '--log-level', 'warn'];

test('blobs hash to their digests, sizes are exact, and listing fetches no blob data', async () => {
  const mnt = await mountpoint('m1');
  const before = proxy.count(/\/blobs\//, 'GET');
  const m = await startMount(`${proxy.host}/e2e/small`, mnt, common('m1'));
  try {
    // The blob layout, and the names of the layer trees: none of it needs layer data.
    const { stdout: ls } = await run('ls', ['-lR', mnt, '--ignore=rootfs', '--ignore=layers']);
    // Names only (readdir): a stat of rootfs/ or layers/<d>/ would build that tree, since their
    // own attributes come from the layer's `./` entry.
    const { stdout: names } = await run('ls', ['-1', mnt, join(mnt, 'layers')]);
    for (const name of ['layers', 'rootfs', ...small.layers.map((l) => l.digest)]) assert.ok(names.split('\n').includes(name), `${name} is listed`);
    assert.equal(proxy.count(/\/blobs\//, 'GET') - before, 1, 'only the config blob was fetched (at resolve time)');
    for (const l of [...small.layers, small.config]) {
      const st = await stat(join(mnt, 'blobs', l.digest));
      assert.equal(st.size, l.size);
      assert.ok(ls.includes(l.digest));
    }
    const { stdout } = await run('sh', ['-c', `cd ${mnt}/blobs && sha256sum *`]);
    for (const line of stdout.trim().split('\n')) {
      const [sum, name] = line.split(/\s+/);
      assert.equal(`sha256:${sum}`, name);
    }
    assert.equal(stdout.trim().split('\n').length, small.layers.length + 1);
    const manifest = await run('sha256sum', [join(mnt, 'manifest.json')]);
    assert.equal(`sha256:${manifest.stdout.split(' ')[0]}`, small.manifestDigest, 'manifest.json is byte-exact');
    await assert.rejects(run('touch', [join(mnt, 'new-file')]), /Read-only file system|Permission denied/);
  } finally {
    assert.deepEqual(await m.stop(), [0, null]);
  }
  assert.equal(await isMounted(mnt), false);
});

test('dd of a 100 MB layer from a cold mount: correct bytes, ≥ 8 MiB in flight, metrics match', async () => {
  const mnt = await mountpoint('m2');
  const port = await freePort();
  const m = await startMount(`${proxy.host}/e2e/big:v1`, mnt, [...common('m2'), '--metrics', `127.0.0.1:${port}`]);
  try {
    const layer = big.layers[0]!;
    const { stdout } = await run('sh', ['-c', `dd if=${join(mnt, 'blobs', layer.digest)} bs=1M status=none | sha256sum`]);
    assert.equal(stdout.split(' ')[0], BIG_SHA);
    const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
    const metrics = parsePrometheus(text);
    assert.ok(metrics.get('regfs_fetch_in_flight_bytes_peak')! >= 8 << 20, `peak in flight ${metrics.get('regfs_fetch_in_flight_bytes_peak')}`);
    // Counters match what we did: the config at resolve time plus the whole layer, once.
    assert.equal(metrics.get('regfs_fetched_bytes_total'), layer.size);
    assert.equal(metrics.get('regfs_served_bytes_total'), layer.size);
    const requests = metrics.get('regfs_range_requests_total')!;
    // Read-ahead asks in 4 MiB ranges (several in parallel); before the window is ahead of the
    // reader, the first reads fetch their own 64 KiB blocks (measured: 34 requests for 100 MB).
    assert.ok(requests <= Math.ceil(layer.size / (4 << 20)) + 16, `range requests ${requests}`);
    assert.equal(metrics.get(`regfs_http_requests_total{host="${proxy.host}",kind="manifest",status="200"}`), 1);
    assert.equal(metrics.get('regfs_cache_corruptions_total'), 0);
    assert.ok(metrics.has('regfs_read_duration_seconds_count'));
    assert.equal((await fetch(`http://127.0.0.1:${port}/healthz`)).status, 200);
  } finally {
    assert.deepEqual(await m.stop(), [0, null]);
  }
});

test('registry killed during a cold cat: EIO within the budget, daemon stays up, recovers', async () => {
  const mnt = await mountpoint('m3');
  const m = await startMount(`${proxy.host}/e2e/big:v1`, mnt, [...common('m3'), '--retry-budget', '3s']);
  const file = join(mnt, 'blobs', big.layers[0]!.digest);
  try {
    await run('dd', [`if=${file}`, 'of=/dev/null', 'bs=1M', 'count=4', 'status=none']);
    proxy.throttle(10 << 20);
    const t0 = Date.now();
    const cat = run('sh', ['-c', `cat ${file} > /dev/null`]).then(
      () => 'ok',
      (e: { stderr: string }) => e.stderr,
    );
    await new Promise((r) => setTimeout(r, 1000));
    await reg.kill();
    const outcome = await cat;
    const took = Date.now() - t0;
    assert.match(outcome, /Input\/output error/);
    assert.ok(took < 1000 + 3000 + 5000 + 2000, `took ${took} ms`);
    // Still up: listing and cached ranges work with the registry gone.
    assert.ok((await readdir(join(mnt, 'blobs'))).length >= 2);
    const head = await run('sh', ['-c', `dd if=${file} bs=1M count=4 status=none | sha256sum`]);
    assert.equal(head.stdout.split(' ')[0], createHash('sha256').update(BIG.subarray(0, 4 << 20)).digest('hex'));
    await reg.restart();
    proxy.throttle(0);
    const { stdout } = await run('sh', ['-c', `sha256sum < ${file}`]);
    assert.equal(stdout.split(' ')[0], BIG_SHA);
  } finally {
    proxy.throttle(0);
    assert.deepEqual(await m.stop(), [0, null]);
  }
});

test('kill -9 of the daemon leaves a dead mount that regfs mount (and regfs unmount) clear', async () => {
  const mnt = await mountpoint('m4');
  const m = await startMount(`${proxy.host}/e2e/small`, mnt, common('m4'));
  await m.stop('SIGKILL');
  await assert.rejects(stat(join(mnt, 'blobs')), /ENOTCONN|Transport endpoint is not connected/);
  const again = await startMount(`${proxy.host}/e2e/small`, mnt, common('m4'));
  assert.ok((await readdir(join(mnt, 'blobs'))).length >= 2);
  await again.stop('SIGKILL');
  const { stdout } = await run('node', [CLI, 'unmount', mnt]);
  assert.match(stdout, /unmounted/);
  assert.equal(await isMounted(mnt), false);
  await stat(mnt); // a plain directory again
});

test('SIGTERM during 8 parallel readers of 10 MiB: exit 0, each reader gets its exact bytes or EIO/ENOTCONN, ≥ 1 is cut short, mount gone', async () => {
  const mnt = await mountpoint('m5');
  const m = await startMount(`${proxy.host}/e2e/big:v1`, mnt, common('m5'));
  // 4 MiB/s per response: in the 500 ms before SIGTERM the daemon's connections cannot have moved
  // the 80 MiB the readers want, so some reads are surely in flight when it stops.
  proxy.throttle(4 * MiB);
  try {
    const file = join(mnt, 'blobs', big.layers[0]!.digest);
    // Every reader holds the file open before the signal, so none can miss the mount altogether.
    const handles = await Promise.all(Array.from({ length: 8 }, () => open(file, 'r')));
    const readers = handles.map(async (fh, i) => {
      const want = BIG.subarray(i * 10 * MiB, (i + 1) * 10 * MiB);
      const got = Buffer.alloc(want.length);
      try {
        for (let off = 0; off < got.length; ) {
          const { bytesRead } = await fh.read(got, off, Math.min(MiB, got.length - off), i * 10 * MiB + off);
          if (bytesRead === 0) return 'short';
          off += bytesRead;
        }
        return got.equals(want) ? 'exact' : 'WRONG BYTES';
      } catch (e) {
        return (e as NodeJS.ErrnoException).code ?? String(e);
      } finally {
        await fh.close().catch(() => {});
      }
    });
    await new Promise((r) => setTimeout(r, 500));
    const t0 = Date.now();
    assert.deepEqual(await m.stop('SIGTERM'), [0, null]);
    assert.ok(Date.now() - t0 < 10_000);
    const outcomes = await Promise.all(readers);
    // A reader that was served has exactly its bytes; one cut short got EIO (in-flight reads are
    // ended) or ENOTCONN (it asked after the unmount) — never wrong or short bytes, never a hang.
    for (const o of outcomes) assert.match(o, /^(exact|EIO|ENOTCONN)$/, `outcomes: ${outcomes.join(' ')}`);
    assert.ok(outcomes.filter((o) => o !== 'exact').length >= 1, `SIGTERM came while reads were in flight (outcomes: ${outcomes.join(' ')})`);
    assert.equal(await isMounted(mnt), false);
    await stat(mnt);
  } finally {
    proxy.throttle(0);
  }
});

test('--daemon returns once the mount answers; a bad reference exits non-zero with the reason', async () => {
  const mnt = await mountpoint('m6');
  const { stdout } = await run('node', [CLI, 'mount', `${proxy.host}/e2e/small`, mnt, '--daemon', ...common('m6')]);
  assert.match(stdout, /^regfs: mounted /);
  assert.ok((await readdir(mnt)).includes('manifest.json'), 'ls works as soon as --daemon returns');
  const { stdout: un } = await run('node', [CLI, 'unmount', mnt]);
  assert.match(un, /unmounted/);
  await waitFor('daemon exit after unmount', async () => !(await isMounted(mnt)));

  const bad = await run('node', [CLI, 'mount', `${proxy.host}/e2e/nosuch:tag`, mnt, '--daemon', ...common('m6b')]).then(
    () => ({ code: 0, stderr: '' }),
    (e: { code: number; stderr: string }) => e,
  );
  assert.equal(bad.code, 1);
  assert.match(bad.stderr, /manifest .*e2e\/nosuch:tag not found/);
  assert.equal(await isMounted(mnt), false);
});

test('a missing mountpoint and an unparsable reference get clear errors', async () => {
  const r1 = await run('node', [CLI, 'mount', `${proxy.host}/e2e/small`, join(dir.path, 'nope'), ...common('x')]).catch((e: { stderr: string }) => e);
  assert.match(r1.stderr, /mountpoint .*nope: does not exist/);
  const r2 = await run('node', [CLI, 'mount', 'Bad Ref', join(dir.path, 'nope'), ...common('x')]).catch((e: { stderr: string }) => e);
  assert.match(r2.stderr, /invalid image reference "Bad Ref"/);
  void spawn;
});

test('--prefetch all fetches every layer in the background once mounted, no faster than --prefetch-rate 4MiB', async () => {
  const mnt = await mountpoint('m7');
  const port = await freePort();
  const total = prefetched.layers.reduce((n, l) => n + l.size, 0);
  // Well under what an uncapped prefetch moves on loopback (about 23 MB/s measured here), so a
  // missing cap shows: 24 MiB take ~1 s uncapped, ≥ 5 s capped.
  const rate = 4 * MiB;
  const m = await startMount(`${proxy.host}/e2e/prefetch:v1`, mnt, [...common('m7'), '--metrics', `127.0.0.1:${port}`, '--prefetch', 'all', '--prefetch-rate', '4MiB']);
  // Timed from the ready line: the first prefetch request cannot have gone out before it.
  const t0 = Date.now();
  try {
    let fetched = 0;
    await waitFor('prefetch to finish', async () => {
      fetched = parsePrometheus(await (await fetch(`http://127.0.0.1:${port}/metrics`)).text()).get('regfs_fetched_bytes_total') ?? 0;
      return fetched >= total;
    }, 60_000);
    assert.equal(fetched, total);
    // A rate cap is an average over the run; allow it a burst of one second's worth, as a token
    // bucket of one second would.
    const seconds = (Date.now() - t0) / 1000;
    const floor = total / rate - 1;
    assert.ok(seconds >= floor, `took ${seconds.toFixed(2)} s for ${total} bytes; a ${rate} B/s cap needs ≥ ${floor.toFixed(2)} s`);
    // Everything is local now: a full read makes no range request.
    const before = proxy.count(/\/blobs\//);
    await run('sh', ['-c', `cat ${mnt}/blobs/* > /dev/null`]);
    assert.equal(proxy.count(/\/blobs\//), before);
  } finally {
    assert.deepEqual(await m.stop(), [0, null]);
  }
});
