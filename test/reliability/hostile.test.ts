import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { type FaultProxy, startFaultProxy } from '../helpers/fault-proxy.js';
import { patternBytes, pushBlob, pushRawImage } from '../helpers/images.js';
import { CLI, forceUnmount, startMount } from '../helpers/mount.js';
import { type RunningRegistry, startRegistry } from '../helpers/registry.js';
import { observe } from '../helpers/results.js';
import { tempDir } from '../helpers/tmp.js';

const run = promisify(execFile);
const OCI = 'application/vnd.oci.image.manifest.v1+json';
const D = (c: string): string => `sha256:${c.repeat(64)}`;

let dir: { path: string; cleanup: () => Promise<void> };
let reg: RunningRegistry;
let proxy: FaultProxy;
let cfg: { digest: string; size: number };
const stops: (() => Promise<void>)[] = [];

before(async () => {
  dir = await tempDir('hostile');
  reg = await startRegistry({ root: join(dir.path, 'storage'), workDir: dir.path });
  stops.push(reg.stop);
  const img = await pushRawImage(reg.url, 'hostile/x', 'v1', [patternBytes(2 << 20, 1)]);
  cfg = img.config;
  proxy = await startFaultProxy(reg.url);
  stops.push(proxy.close);
});

after(async () => {
  for (const s of stops.reverse()) await s().catch(() => {});
  await dir?.cleanup();
});

const manifest = (layers: unknown[], extra: Record<string, unknown> = {}): string =>
  JSON.stringify({ schemaVersion: 2, mediaType: OCI, config: { mediaType: 'application/vnd.oci.image.config.v1+json', ...cfg }, layers, ...extra });
const layer = (o: Record<string, unknown> = {}): Record<string, unknown> => ({ mediaType: 'application/vnd.oci.image.layer.v1.tar', digest: D('a'), size: 10, ...o });

async function inspect(body: string, contentType = OCI): Promise<{ code: number; stderr: string; ms: number }> {
  proxy.clearFaults();
  proxy.inject(/\/manifests\//, { kind: 'respond', status: 200, body, headers: { 'content-type': contentType } });
  const t0 = Date.now();
  const r = await run('node', [CLI, 'inspect', `${proxy.host}/hostile/x:v1`, '--cache-dir', join(dir.path, 'cache'), '--retry-budget', '3s']).then(
    () => ({ code: 0, stderr: '' }),
    (e: { code: number; stderr: string }) => ({ code: e.code, stderr: e.stderr }),
  );
  return { ...r, ms: Date.now() - t0 };
}

test('hostile manifests get one clear error each, fast, never a crash', async () => {
  const selfIndex = JSON.stringify({
    schemaVersion: 2,
    mediaType: 'application/vnd.oci.image.index.v1+json',
    manifests: [{ mediaType: 'application/vnd.oci.image.index.v1+json', digest: D('b'), size: 100, platform: { os: 'linux', architecture: 'amd64' } }],
  });
  const cases: [string, string, RegExp][] = [
    ['invalid JSON', '{"schemaVersion": 2, "layers": [', /not valid JSON/],
    ['wrong types', manifest([], { layers: 'all of them' }), /layers must be an array/],
    ['negative layer size', manifest([layer({ size: -5 })]), /layers\[0\]\.size must be a non-negative integer/],
    ['huge layer size', manifest([layer({ size: 1e20 })]), /layers\[0\]\.size must be a non-negative integer/],
    ['10 000 layers', manifest(Array.from({ length: 10_000 }, () => layer())), /10000 layers; refusing more than 1000/],
    ['unknown digest algorithm', manifest([layer({ digest: `md5:${'a'.repeat(32)}` })]), /unsupported algorithm "md5"/],
    ['digest of the wrong length', manifest([layer({ digest: `sha256:${'a'.repeat(63)}` })]), /needs 64 hex characters/],
    ['schema 1 manifest', JSON.stringify({ schemaVersion: 1, name: 'x', fsLayers: [] }), /schema 1/],
    ['manifest over 50 MiB', ' '.repeat(51 << 20), /exceeds the limit of 52428800 bytes/],
  ];
  for (const [name, body, re] of cases) {
    const r = await inspect(body);
    const ok = r.code === 1 && re.test(r.stderr) && r.ms < 10_000 && !/at .*\.js:\d+/.test(r.stderr);
    await observe({ group: 'hostile manifest', case: name, expected: 'one clear error, exit 1', observed: `exit ${r.code}: ${r.stderr.trim().slice(0, 140)}`, ok });
    assert.ok(ok, `${name}: exit ${r.code}: ${r.stderr}`);
  }
  // An index pointing at a digest whose body is the index again: the digest check breaks the loop.
  proxy.clearFaults();
  proxy.inject(/\/manifests\//, ...Array.from({ length: 5 }, () => ({ kind: 'respond' as const, status: 200, body: selfIndex, headers: { 'content-type': 'application/vnd.oci.image.index.v1+json' } })));
  const r = await run('node', [CLI, 'inspect', `${proxy.host}/hostile/x:v1`, '--platform', 'linux/amd64', '--cache-dir', join(dir.path, 'cache')]).then(() => ({ code: 0, stderr: '' }), (e: { code: number; stderr: string }) => e);
  const ok = r.code === 1 && /manifest from .*: expected sha256:b{64}, got sha256:/.test(r.stderr);
  await observe({ group: 'hostile manifest', case: 'an index that points to itself', expected: 'a digest-mismatch error, no loop', observed: r.stderr.trim().slice(0, 140), ok });
  assert.ok(ok, r.stderr);
  proxy.clearFaults();
});

test('a layer whose size disagrees with its blob: the mount stays up, the blob reads EIO at the end', async () => {
  const data = patternBytes(1 << 20, 2);
  const digest = await pushBlob(reg.url, 'hostile/x', data);
  const body = manifest([layer({ digest, size: data.length + 500_000 })]);
  const m = createHash('sha256').update(body).digest('hex');
  await fetch(`${reg.url}/v2/hostile/x/manifests/liar`, { method: 'PUT', body, headers: { 'content-type': OCI } });
  const mnt = join(dir.path, 'liar');
  await mkdir(mnt, { recursive: true });
  const mount = await startMount(`${proxy.host}/hostile/x@sha256:${m}`, mnt, ['--cache-dir', join(dir.path, 'cache-liar'), '--retry-budget', '3s', '--log-level', 'warn']);
  stops.push(async () => {
    await mount.stop();
    await forceUnmount(mnt);
  });
  const head = await run('sh', ['-c', `dd if='${join(mnt, 'blobs', digest)}' bs=4096 count=1 status=none | sha256sum`]);
  const whole = await readFile(join(mnt, 'blobs', digest)).then(() => 'read', (e: Error) => e.message);
  const alive = (await run('ls', [mnt])).stdout;
  const ok = head.stdout.startsWith(createHash('sha256').update(data.subarray(0, 4096)).digest('hex')) && /EIO/.test(whole) && /manifest\.json/.test(alive);
  await observe({ group: 'hostile manifest', case: 'layer size disagrees with the blob', expected: 'bytes that exist read fine; the missing end is EIO; mount stays up', observed: `start read ok; whole read: ${whole.slice(0, 60)}`, ok });
  assert.ok(ok, whole);
});

test('a gzip bomb layer is indexed with bounded memory', async () => {
  const work = join(dir.path, 'bomb');
  await mkdir(work, { recursive: true });
  await run('sh', ['-c', `cd ${work} && truncate -s 1G zeros && tar cf - zeros | gzip -1 > bomb.tgz`]);
  const gz = await readFile(join(work, 'bomb.tgz'));
  await pushRawImage(reg.url, 'hostile/bomb', 'v1', [{ data: gz, mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip' }]);
  const mnt = join(dir.path, 'bomb-mnt');
  await mkdir(mnt, { recursive: true });
  const mount = await startMount(`${proxy.host}/hostile/bomb:v1`, mnt, ['--cache-dir', join(dir.path, 'cache-bomb'), '--log-level', 'warn']);
  stops.push(async () => {
    await mount.stop();
    await forceUnmount(mnt);
  });
  let peak = 0;
  const sampler = setInterval(() => {
    void readFile(`/proc/${mount.child.pid}/status`, 'utf8').then((s) => (peak = Math.max(peak, Number(/VmRSS:\s+(\d+)/.exec(s)?.[1] ?? 0) / 1024)), () => {});
  }, 100);
  const t0 = Date.now();
  const ls = (await run('ls', ['-l', join(mnt, 'rootfs')])).stdout;
  clearInterval(sampler);
  const ok = /1073741824 .* zeros/.test(ls) && peak < 300;
  await observe({ group: 'hostile layer', case: `gzip bomb (${(gz.length / 1e6).toFixed(1)} MB → 1 GiB)`, expected: 'indexed with bounded memory (RSS < 300 MB)', observed: `listed in ${((Date.now() - t0) / 1000).toFixed(1)} s, peak RSS ${peak.toFixed(0)} MB`, ok });
  assert.ok(ok, `${ls} peak ${peak}`);
});

