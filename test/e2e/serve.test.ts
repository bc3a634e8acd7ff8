import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { cp, mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { type FaultProxy, startFaultProxy } from '../helpers/fault-proxy.js';
import { type BuiltImage, buildImage, describeLayout, patternBytes, pushImage } from '../helpers/images.js';
import { CLI, forceUnmount, parsePrometheus } from '../helpers/mount.js';
import { type RunningRegistry, startRegistry } from '../helpers/registry.js';
import { GiveUp, freePort, tempDir, waitFor, waitForMatch } from '../helpers/tmp.js';

const run = promisify(execFile);
const UNIT = join(import.meta.dirname, '../../../scripts/regfs.service');

let dir: { path: string; cleanup: () => Promise<void> };
let reg: RunningRegistry;
let proxy: FaultProxy;
let imgA: BuiltImage;
let imgB: BuiltImage;
const cleanups: (() => Promise<void>)[] = [];

before(async () => {
  dir = await tempDir('e2e-serve');
  reg = await startRegistry({ root: join(dir.path, 'storage'), workDir: dir.path });
  proxy = await startFaultProxy(reg.url);
  // Two images on one base layer: B's layout starts as a copy of A's after the base.
  const base = await buildImage(dir.path, 'base', [
    async (r) => {
      await mkdir(join(r, 'etc'), { recursive: true });
      await cp('/etc/os-release', join(r, 'etc/os-release'), { dereference: true });
      await writeFile(join(r, 'base.bin'), patternBytes(3 << 20, 1));
    },
  ]);
  await cp(base.layout, join(dir.path, 'b-layout'), { recursive: true });
  const extend = async (layout: string, file: string, seed: number): Promise<BuiltImage> => {
    const bundle = join(dir.path, `${file}-bundle`);
    await run('umoci', ['unpack', '--image', `${layout}:latest`, bundle]);
    await writeFile(join(bundle, 'rootfs', file), patternBytes(1 << 20, seed));
    await run('umoci', ['repack', '--image', `${layout}:latest`, bundle]);
    return describeLayout(layout, 'latest');
  };
  imgA = await extend(base.layout, 'a.bin', 2);
  imgB = await extend(join(dir.path, 'b-layout'), 'b.bin', 3);
  assert.equal(imgA.layers[0]!.digest, imgB.layers[0]!.digest);
  await pushImage(imgA, reg.host, 'serve/a', 'v1');
  await pushImage(imgB, reg.host, 'serve/b', 'v1');
});

after(async () => {
  for (const c of cleanups.reverse()) await c().catch(() => {});
  await proxy?.close();
  await reg?.stop();
  await dir?.cleanup();
});

interface Serve {
  child: ChildProcess;
  store: string;
  control: string;
  stderr(): string;
  stop(): Promise<[number | null, string | null]>;
}

async function startServe(name: string, config: Record<string, unknown>, env: Record<string, string> = {}): Promise<Serve> {
  const store = join(dir.path, `${name}-store`);
  const cacheDir = join(dir.path, `${name}-cache`);
  const control = join(cacheDir, 'control.sock');
  const cfgPath = join(dir.path, `${name}.yaml`);
  await writeFile(cfgPath, JSON.stringify({ store, cacheDir, logLevel: 'info', ...config }));
  const child = spawn('node', [CLI, 'serve', '--config', cfgPath], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env } });
  let out = '';
  let err = '';
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
  const exited = new Promise<[number | null, string | null]>((r) => child.once('exit', (c, s) => r([c, s])));
  await waitFor(`serve ready (${err.slice(-500)})`, async () => {
    if (child.exitCode !== null) throw new GiveUp(`serve exited (${child.exitCode}): ${err}`);
    return out.includes('regfs: serving');
  });
  const s: Serve = {
    child,
    store,
    control,
    stderr: () => err,
    stop: async () => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      return exited;
    },
  };
  cleanups.push(async () => {
    await s.stop();
    await forceUnmount(store);
  });
  return s;
}

const blobPath = (digest: string): RegExp => new RegExp(`/blobs/${digest}$`);

test('two images sharing a base layer: the shared layer is fetched and indexed once; a restart lists them with no network', async () => {
  const port = await freePort();
  const s = await startServe('shared', { metrics: `127.0.0.1:${port}` });
  const base = imgA.layers[0]!;
  const pa = join(s.store, proxy.host, 'serve/a/v1');
  const pb = join(s.store, proxy.host, 'serve/b/v1');
  assert.equal(await readFile(join(pa, 'rootfs/etc/os-release'), 'utf8'), await readFile('/etc/os-release', 'utf8'));
  assert.ok((await readFile(join(pb, 'rootfs/base.bin'))).equals(patternBytes(3 << 20, 1)));
  assert.ok((await readFile(join(pb, 'rootfs/b.bin'))).equals(patternBytes(1 << 20, 3)));
  const shared = proxy.requests.filter((r) => blobPath(base.digest).test(r.path) && r.headers.range);
  const bytes = shared.reduce((n, r) => {
    const m = /bytes=(\d+)-(\d+)/.exec(String(r.headers.range))!;
    return n + Number(m[2]) - Number(m[1]) + 1;
  }, 0);
  assert.equal(bytes, base.size, `the shared layer (${base.size} bytes) was fetched once: ${shared.length} requests, ${bytes} bytes`);
  const metrics = parsePrometheus(await (await fetch(`http://127.0.0.1:${port}/metrics`)).text());
  assert.equal(metrics.get('regfs_layer_indexes_built_total{format="gzip"}'), 3, 'base + a + b, each indexed once');
  assert.deepEqual((await readdir(join(s.store, proxy.host, 'serve'))).sort(), ['a', 'b']);
  // ctl stats is the metrics as JSON.
  const { stdout } = await run('node', [CLI, 'ctl', 'stats', '--control', s.control]);
  const stats = JSON.parse(stdout) as { images: number; metrics: { name: string; values: { value: number }[] }[] };
  const again = parsePrometheus(await (await fetch(`http://127.0.0.1:${port}/metrics`)).text());
  for (const name of ['regfs_fetched_bytes_total', 'regfs_served_bytes_total', 'regfs_cache_misses_total']) {
    assert.equal(stats.metrics.find((m) => m.name === name)?.values[0]?.value, again.get(name), name);
  }
  assert.equal(stats.images, 2);
  const ls = JSON.parse((await run('node', [CLI, 'ctl', 'ls', '--control', s.control])).stdout) as { ref: string }[];
  assert.deepEqual(ls.map((i) => i.ref).sort(), [`${proxy.host}/serve/a:v1`, `${proxy.host}/serve/b:v1`]);
  assert.deepEqual(await s.stop(), [0, null]);

  // Restart with the registry unreachable: what was seen lists and reads from cache and indexes.
  await proxy.close();
  const s2 = await startServe('shared', {});
  try {
    assert.deepEqual((await readdir(join(s2.store, proxy.host, 'serve'))).sort(), ['a', 'b']);
    assert.equal(await readFile(join(s2.store, proxy.host, 'serve/a/v1/rootfs/etc/os-release'), 'utf8'), await readFile('/etc/os-release', 'utf8'));
  } finally {
    assert.deepEqual(await s2.stop(), [0, null]);
    proxy = await startFaultProxy(reg.url, proxy.port);
  }
});

test('mirrors: a dead one and a 404 one fall back to the origin; once the mirror recovers, reads go to it', async () => {
  const deadPort = await freePort();
  const empty = await startRegistry({ root: join(dir.path, 'empty-storage'), workDir: dir.path });
  cleanups.push(empty.stop);
  const emptyProxy = await startFaultProxy(empty.url);
  cleanups.push(emptyProxy.close);
  const s = await startServe('mirrors', {
    registries: { [proxy.host]: { mirrors: [`http://127.0.0.1:${deadPort}`, `http://${emptyProxy.host}`] } },
    retryBudget: '5s',
  });
  const before = proxy.requests.length;
  assert.ok((await readFile(join(s.store, proxy.host, 'serve/a/v1/rootfs/a.bin'))).equals(patternBytes(1 << 20, 2)));
  assert.ok(proxy.requests.length > before, 'the origin served');
  assert.ok(emptyProxy.requests.some((r) => r.path.includes('/manifests/')), 'the 404 mirror was asked');
  await waitForMatch(() => s.stderr(), /mirror failed; using the next one/);
  // The dead mirror comes back (with the content), and after its back-off it is used again.
  const mirror = await startFaultProxy(reg.url, deadPort);
  cleanups.push(mirror.close);
  await new Promise((r) => setTimeout(r, 5500));
  const originBefore = proxy.requests.length;
  assert.ok((await readFile(join(s.store, proxy.host, 'serve/b/v1/rootfs/b.bin'))).equals(patternBytes(1 << 20, 3)));
  assert.ok(mirror.requests.some((r) => r.path.includes('/serve/b/')), 'the recovered mirror served');
  // Nothing of serve/b reaches the origin once the mirror is back: SOCI discovery behind mirrors
  // goes through the mirrors (referrers API, then tag), and a mirror's 404 there is final.
  assert.deepEqual(proxy.requests.slice(originBefore).map((r) => `${r.method} ${r.path}`).filter((p) => p.includes('/serve/b/')), [], 'the origin was not needed');
  assert.deepEqual(await s.stop(), [0, null]);
});

test('sd_notify: READY=1 only once the store answers, STOPPING=1 on SIGTERM', async () => {
  const sock = join(dir.path, 'notify.sock');
  // Node cannot open unix datagram sockets; a few lines of Python can. On READY=1 it checks at
  // once that the store is mounted and a lookup works, and reports both.
  const py = `
import os, socket, subprocess, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM); s.bind(${JSON.stringify(sock)})
print('listening', flush=True)
while True:
    msg = s.recv(4096).decode()
    for line in msg.split('\\n'):
        if line == 'READY=1':
            store = sys.argv[1]
            mounted = any(l.split()[1] == store for l in open('/proc/mounts'))
            ls = subprocess.run(['ls', os.path.join(store, sys.argv[2], 'serve/a/v1')], capture_output=True, text=True)
            print('READY mounted=%s ls=%s' % (mounted, ' '.join(ls.stdout.split())), flush=True)
        elif line.startswith('STOPPING') or line.startswith('STATUS') or line.startswith('WATCHDOG'):
            print(line.split('=')[0], flush=True)
        if line == 'STOPPING=1':
            sys.exit(0)
`;
  const store = join(dir.path, 'notify-store');
  const listener = spawn('python3', ['-c', py, store, proxy.host], { stdio: ['ignore', 'pipe', 'inherit'] });
  let heard = '';
  listener.stdout!.on('data', (d: Buffer) => (heard += d.toString()));
  cleanups.push(async () => void listener.kill());
  await waitFor('listener', async () => heard.includes('listening'));
  const s = await startServe('notify', {}, { NOTIFY_SOCKET: sock, WATCHDOG_USEC: '400000' });
  await waitFor('READY=1', async () => heard.includes('READY'));
  assert.match(heard, /READY mounted=True ls=blobs config\.json layers lowerdir manifest\.json rootfs/);
  await waitFor('watchdog pings', async () => heard.includes('WATCHDOG'));
  assert.deepEqual(await s.stop(), [0, null]);
  await waitFor('STOPPING=1', async () => heard.includes('STOPPING'));
});

test('systemd-analyze verify accepts the unit file', async () => {
  const { stdout, stderr } = await run('systemd-analyze', ['verify', UNIT]);
  assert.equal(`${stdout}${stderr}`.trim(), '');
  const unit = await readFile(UNIT, 'utf8');
  assert.match(unit, /^Type=notify$/m);
  assert.match(unit, /^Restart=on-failure$/m);
  assert.match(unit, /^DeviceAllow=\/dev\/fuse rw$/m);
});

test('SIGHUP reloads registry settings; idle images are forgotten and come back on lookup', async () => {
  const htpasswd = join(dir.path, 'htpasswd-reload');
  await writeFile(htpasswd, (await run('htpasswd', ['-Bbn', 'ops', 'right'])).stdout);
  const locked = await startRegistry({ root: join(dir.path, 'storage'), workDir: dir.path, auth: { kind: 'htpasswd', path: htpasswd } });
  cleanups.push(locked.stop);
  const s = await startServe('reload', { registries: { [locked.host]: { username: 'ops', password: 'wrong' } }, idleTimeout: '1s' });
  const image = join(s.store, locked.host, 'serve/a/v1');
  await assert.rejects(readdir(image), /EACCES/, 'refused credentials are "permission denied"');
  // Logs are written asynchronously: wait for the line rather than race it.
  await waitFor('the auth failure in the log', async () => /authentication failed/.test(s.stderr()));
  // Fix the password in the config file and reload.
  const cfgPath = join(dir.path, 'reload.yaml');
  const cfg = JSON.parse(await readFile(cfgPath, 'utf8')) as Record<string, unknown>;
  await writeFile(cfgPath, JSON.stringify({ ...cfg, registries: { [locked.host]: { username: 'ops', password: 'right' } } }));
  s.child.kill('SIGHUP');
  await waitFor('reload', async () => s.stderr().includes('registry settings reloaded'));
  assert.ok((await readdir(image)).includes('rootfs'));
  const ls = async (): Promise<string[]> => (JSON.parse((await run('node', [CLI, 'ctl', 'ls', '--control', s.control])).stdout) as { ref: string }[]).map((i) => i.ref);
  assert.deepEqual(await ls(), [`${locked.host}/serve/a:v1`]);
  await waitFor('idle image forgotten', async () => (await ls()).length === 0, 10_000);
  await waitFor('the idle line in the log', async () => /idle image forgotten/.test(s.stderr()));
  // It comes back on the next lookup (from its record: no re-resolution needed).
  assert.ok((await readdir(image)).includes('rootfs'));
  assert.deepEqual(await s.stop(), [0, null]);
});
