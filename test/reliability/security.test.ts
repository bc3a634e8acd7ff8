import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readdir, readFile, stat, writeFile, mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { type FaultProxy, startFaultProxy } from '../helpers/fault-proxy.js';
import { patternBytes, pushRawImage } from '../helpers/images.js';
import { CLI, forceUnmount, startMount } from '../helpers/mount.js';
import { type RunningRegistry, startRegistry } from '../helpers/registry.js';
import { observe } from '../helpers/results.js';
import { type StaticServer, startStaticServer } from '../helpers/static-server.js';
import { startTokenService } from '../helpers/token-service.js';
import { tempDir } from '../helpers/tmp.js';
import { makeRegistry } from '../helpers/client.js';

const run = promisify(execFile);
const PASSWORD = 'Pa55-SECRET-word';

let dir: { path: string; cleanup: () => Promise<void> };
let storage: string;
let layer: string;
const stops: (() => Promise<void>)[] = [];
const logs: string[] = [];

before(async () => {
  dir = await tempDir('security');
  storage = join(dir.path, 'storage');
  const open = await startRegistry({ root: storage, workDir: dir.path });
  stops.push(open.stop);
  layer = (await pushRawImage(open.url, 'sec/x', 'v1', [patternBytes(3 << 20, 3)])).layers[0]!.digest;
});

after(async () => {
  for (const s of stops.reverse()) await s().catch(() => {});
  await dir?.cleanup();
});

async function mountAndRead(name: string, ref: string, extra: string[] = []): Promise<{ mnt: string; cache: string; stop: () => Promise<void> }> {
  const mnt = join(dir.path, name);
  const cache = join(dir.path, `cache-${name}`);
  await mkdir(mnt, { recursive: true });
  const m = await startMount(ref, mnt, ['--cache-dir', cache, '--log-level', 'trace', ...extra]);
  const stop = async (): Promise<void> => {
    await m.stop();
    logs.push(m.stderr());
    await forceUnmount(mnt);
  };
  stops.push(stop);
  await run('sh', ['-c', `cat '${join(mnt, 'blobs', layer)}' > /dev/null`]);
  return { mnt, cache, stop };
}

test('credentials never reach a redirect target on another host name, and signed URL queries stay out of logs', async () => {
  const statik: StaticServer = await startStaticServer(storage);
  stops.push(statik.close);
  const htpasswd = join(dir.path, 'htpasswd');
  await writeFile(htpasswd, (await run('htpasswd', ['-Bbn', 'sec', PASSWORD])).stdout);
  // The registry is 127.0.0.1; its blobs redirect to "localhost": another host name (and port).
  const reg = await startRegistry({ root: storage, workDir: dir.path, auth: { kind: 'htpasswd', path: htpasswd }, redirectBaseUrl: `http://localhost:${statik.port}/` });
  stops.push(reg.stop);
  const proxy: FaultProxy = await startFaultProxy(reg.url);
  stops.push(proxy.close);
  proxy.inject(/\/blobs\//, { kind: 'location-query', query: 'X-Amz-Signature=SIGSECRET123&X-Amz-Credential=CREDSECRET456&X-Amz-Date=20990101T000000Z&X-Amz-Expires=3600' });
  const cfgPath = join(dir.path, 'creds.yaml');
  await writeFile(cfgPath, JSON.stringify({ registries: { [proxy.host]: { username: 'sec', password: PASSWORD } } }));
  const { stop } = await mountAndRead('redir', `${proxy.host}/sec/x:v1`, ['--config', cfgPath]);
  await stop();
  const leaked = statik.requests.filter((r) => r.headers.authorization !== undefined || r.headers.cookie !== undefined);
  const ok = statik.requests.length > 0 && leaked.length === 0 && proxy.requests.some((r) => r.headers.authorization);
  await observe({ group: 'security', case: 'Authorization to a redirect on another host name/port', expected: 'never sent', observed: `${statik.requests.length} storage requests, ${leaked.length} with credentials`, ok });
  assert.ok(ok);
});

test('token registry: tokens, passwords and auth fields never appear in logs at trace level', async () => {
  const work = join(dir.path, 'tok-work');
  await mkdir(work, { recursive: true });
  const ts = await startTokenService({ workDir: work, service: 'sec', issuer: 'sec-i', users: { tokuser: PASSWORD }, expiresIn: 1 });
  const reg = await startRegistry({ root: storage, workDir: work, auth: { kind: 'token', realm: ts.realm, service: 'sec', issuer: 'sec-i', certPath: ts.certPath } });
  stops.push(ts.close, reg.stop);
  const docker = join(dir.path, 'docker.json');
  await writeFile(docker, JSON.stringify({ auths: { [reg.host]: { auth: Buffer.from(`tokuser:${PASSWORD}`).toString('base64') } } }));
  const { stop } = await mountAndRead('tok', `${reg.host}/sec/x:v1`, ['--docker-config', docker]);
  await new Promise((r) => setTimeout(r, 1500));
  await stop();
  // A wrong password too: its error path must not echo it.
  await writeFile(docker, JSON.stringify({ auths: { [reg.host]: { auth: Buffer.from('tokuser:WRONG-SECRET-pw').toString('base64') } } }));
  const bad = await run('node', [CLI, 'inspect', `${reg.host}/sec/x:v1`, '--docker-config', docker, '--log-level', 'trace', '--cache-dir', join(dir.path, 'c-bad')]).then((r) => r.stderr, (e: { stderr: string }) => e.stderr);
  logs.push(bad);
  const all = logs.join('\n');
  const secrets = [PASSWORD, 'WRONG-SECRET-pw', 'SIGSECRET123', 'CREDSECRET456', Buffer.from(`tokuser:${PASSWORD}`).toString('base64'), 'eyJ'];
  const found = secrets.filter((s) => all.includes(s));
  const ok = found.length === 0 && all.length > 1000 && /authentication failed/.test(bad);
  await observe({ group: 'security', case: 'secrets in logs (trace level, token + basic + signed URL + failed auth)', expected: 'none', observed: `${all.split('\n').length} log lines, secrets found: ${found.length ? found.join(', ') : 'none'}`, ok });
  assert.deepEqual(found, []);
  assert.ok(ok);
});

test('cache files are 0600, dirs 0700; the mount is not allow_other unless asked', async () => {
  const { cache, mnt, stop } = await mountAndRead('perm', `127.0.0.1:${(await startRegistryOpen()).port}/sec/x:v1`);
  const mounts = await readFile('/proc/self/mounts', 'utf8');
  const line = mounts.split('\n').find((l) => l.split(' ')[1] === mnt) ?? '';
  await stop();
  const bad: string[] = [];
  const walk = async (d: string): Promise<void> => {
    for (const e of await readdir(d, { withFileTypes: true })) {
      const p = join(d, e.name);
      const mode = (await stat(p)).mode & 0o777;
      if (e.isDirectory()) {
        if (mode !== 0o700) bad.push(`${p} ${mode.toString(8)}`);
        await walk(p);
      } else if (e.isFile() && mode !== 0o600) bad.push(`${p} ${mode.toString(8)}`);
    }
  };
  await walk(cache);
  if (((await stat(cache)).mode & 0o777) !== 0o700) bad.push(`${cache} ${((await stat(cache)).mode & 0o777).toString(8)}`);
  const ok = bad.length === 0 && line !== '' && !line.includes('allow_other') && / ro[, ]|[ ,]ro,/.test(` ${line.split(' ')[3]},`);
  await observe({ group: 'security', case: 'cache permissions; allow_other; read-only mount', expected: 'files 0600, dirs 0700, no allow_other, ro', observed: `${bad.length} wrong modes; mount options ${line.split(' ')[3]}`, ok });
  assert.deepEqual(bad, []);
  assert.ok(ok, line);
});

async function startRegistryOpen(): Promise<RunningRegistry> {
  const r = await startRegistry({ root: storage, workDir: dir.path });
  stops.push(r.stop);
  return r;
}

test('plain HTTP is never implied for a non-loopback host', async () => {
  const { registry } = makeRegistry({ insecureHosts: ['insecure.example:5000'] });
  try {
    const c = registry.client;
    const got = [c.baseUrl('registry.example.com'), c.baseUrl('10.1.2.3:5000'), c.baseUrl('127.0.0.1:5000'), c.baseUrl('localhost'), c.baseUrl('insecure.example:5000')];
    const want = ['https://registry.example.com', 'https://10.1.2.3:5000', 'http://127.0.0.1:5000', 'http://localhost', 'http://insecure.example:5000'];
    const ok = JSON.stringify(got) === JSON.stringify(want);
    await observe({ group: 'security', case: 'plain HTTP only for loopback and --insecure hosts', expected: want.join(' '), observed: got.join(' '), ok });
    assert.deepEqual(got, want);
  } finally {
    await registry.close();
  }
});
