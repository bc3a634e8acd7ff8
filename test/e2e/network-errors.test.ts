import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { patternBytes, pushRawImage } from '../helpers/images.js';
import { CLI, forceUnmount, makeMountpoint, startMount } from '../helpers/mount.js';
import { type RunningRegistry, startRegistry } from '../helpers/registry.js';
import { type StaticServer, startStaticServer } from '../helpers/static-server.js';
import { freePort, tempDir } from '../helpers/tmp.js';

const run = promisify(execFile);
const LAYER = patternBytes(64 << 20, 21);

let dir: { path: string; cleanup: () => Promise<void> };
let reg: RunningRegistry;
let statik: StaticServer;
const mounts: string[] = [];

before(async () => {
  dir = await tempDir('e2e-neterr');
  const storage = join(dir.path, 'storage');
  statik = await startStaticServer(storage);
  reg = await startRegistry({ root: storage, workDir: dir.path, redirectBaseUrl: statik.url });
  await pushRawImage(reg.url, 'net/raw', 'v1', [LAYER]);
});

after(async () => {
  for (const m of mounts) await forceUnmount(m);
  await reg?.stop();
  await statik?.close();
  await dir?.cleanup();
});

interface Outcome {
  code: number;
  stderr: string;
  ms: number;
}

/**
 * Runs the CLI in a private mount namespace whose /etc/hosts is `hosts` and whose name service is
 * files only: an unknown name fails in the resolver, with no DNS query leaving this machine, and
 * a name of our choosing points at loopback without being a loopback name to regfs.
 */
async function isolated(hosts: string, args: string[]): Promise<Outcome> {
  const hostsFile = join(dir.path, `hosts-${Math.random().toString(36).slice(2)}`);
  const nss = join(dir.path, 'nsswitch.conf');
  await writeFile(hostsFile, hosts);
  await writeFile(nss, 'hosts: files\n');
  const script = 'mount --bind "$1" /etc/nsswitch.conf && mount --bind "$2" /etc/hosts && shift 2 && exec "$@"';
  const t0 = Date.now();
  return run('unshare', ['-m', 'sh', '-c', script, 'isolated', nss, hostsFile, 'node', CLI, ...args]).then(
    () => ({ code: 0, stderr: '', ms: Date.now() - t0 }),
    (e: { code: number; stderr: string }) => ({ code: e.code, stderr: e.stderr, ms: Date.now() - t0 }),
  );
}

function assertOneLine(o: Outcome, expected: string, what: string): void {
  assert.equal(o.code, 1, `${what}: exit code; stderr: ${o.stderr}`);
  assert.equal(o.stderr, `${expected}\n`, what);
  assert.ok(o.ms < 5000, `${what}: failed after ${o.ms} ms`);
}

test('at mount time, an unknown host, TLS spoken to a plain-HTTP registry and a refused connection each fail in < 5 s with one line naming the host and the fix', async () => {
  const mnt = await makeMountpoint(dir.path, 'neterr', mounts);
  const cache = ['--cache-dir', join(dir.path, 'cache-neterr')];

  const unknown = await isolated('127.0.0.1 localhost\n', ['mount', 'nosuch.registry.test/app:1', mnt, ...cache]);
  assertOneLine(unknown, "regfs: cannot resolve registry host nosuch.registry.test (ENOTFOUND): check the image reference and this machine's DNS [ERR_DNS]", 'unknown host');

  const plainHost = `plain-registry.test:${reg.port}`;
  const tls = await isolated(`127.0.0.1 localhost\n127.0.0.1 plain-registry.test\n`, ['mount', `${plainHost}/net/raw:v1`, mnt, ...cache]);
  assertOneLine(tls, `regfs: ${plainHost} did not answer TLS; if it serves plain HTTP, use --insecure ${plainHost} [ERR_TLS]`, 'TLS to plain HTTP');
  // The fix the message names works.
  const fixed = await isolated(`127.0.0.1 localhost\n127.0.0.1 plain-registry.test\n`, ['inspect', `${plainHost}/net/raw:v1`, '--insecure', plainHost, ...cache]);
  assert.equal(fixed.code, 0, fixed.stderr);

  const port = await freePort();
  const t0 = Date.now();
  const refused = await run('node', [CLI, 'mount', `127.0.0.1:${port}/net/raw:v1`, mnt, ...cache]).then(
    () => ({ code: 0, stderr: '', ms: Date.now() - t0 }),
    (e: { code: number; stderr: string }) => ({ code: e.code, stderr: e.stderr, ms: Date.now() - t0 }),
  );
  assertOneLine(refused, `regfs: 127.0.0.1:${port} refused the connection: is the registry running, and is the port right? [ERR_CONNECT]`, 'connection refused');
});

test('a working mount keeps retrying a registry that refuses connections: a cold read started while it is down for 2 s returns exact bytes', async () => {
  const mnt = await makeMountpoint(dir.path, 'retry', mounts);
  const m = await startMount(`${reg.host}/net/raw:v1`, mnt, ['--cache-dir', join(dir.path, 'cache-retry'), '--log-level', 'warn']);
  try {
    const layer = (await run('sh', ['-c', `ls -S ${join(mnt, 'blobs')} | head -1`])).stdout.trim();
    await reg.kill();
    const read = run('sh', ['-c', `dd if=${join(mnt, 'blobs', layer)} bs=1M count=1 skip=40 status=none | sha256sum`]);
    await new Promise((r) => setTimeout(r, 2000));
    await reg.restart();
    const { stdout } = await read;
    assert.equal(stdout.split(' ')[0], createHash('sha256').update(LAYER.subarray(40 << 20, 41 << 20)).digest('hex'));
  } finally {
    assert.deepEqual(await m.stop(), [0, null]);
  }
});

test('origin lost mid-read (cached redirect now 404s, registry refusing): a 4 MiB dd of 32 FUSE requests at an uncached offset gets EIO within the 10 s budget + 5 s', async () => {
  const mnt = await makeMountpoint(dir.path, 'lost', mounts);
  const m = await startMount(`${reg.host}/net/raw:v1`, mnt, ['--cache-dir', join(dir.path, 'cache-lost'), '--retry-budget', '10s', '--log-level', 'warn']);
  try {
    const layer = (await run('sh', ['-c', `ls -S ${join(mnt, 'blobs')} | head -1`])).stdout.trim();
    assert.match(layer, /^sha256:[0-9a-f]{64}$/, 'the 64 MiB layer is the largest blob');
    const file = join(mnt, 'blobs', layer);
    // Warm: the redirect to the storage server is now cached.
    const warm = await run('sh', ['-c', `dd if=${file} bs=1M count=1 status=none | sha256sum`]);
    assert.equal(warm.stdout.split(' ')[0], createHash('sha256').update(LAYER.subarray(0, 1 << 20)).digest('hex'));
    // Read-ahead after the warm read settles within the first 16 MiB; the dd below reads at 48 MiB.
    await new Promise((r) => setTimeout(r, 1000));
    const redirected = statik.requests.length;
    assert.ok(redirected >= 1, 'the warm read went to the storage server');
    statik.failNext.push(...Array.from({ length: 10_000 }, () => 404));
    await reg.kill();
    const t0 = Date.now();
    const dd = await run('dd', [`if=${file}`, 'of=/dev/null', 'bs=4M', 'count=1', 'skip=12', 'status=none']).then(
      () => 'ok',
      (e: { stderr: string }) => e.stderr,
    );
    const took = Date.now() - t0;
    assert.match(dd, /Input\/output error/);
    assert.ok(statik.requests.length > redirected, 'the read met the 404ing storage');
    assert.ok(took <= 10000 + 5000, `EIO after ${took} ms`);
  } finally {
    assert.deepEqual(await m.stop(), [0, null]);
  }
});
