import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { parseDigest } from '../../src/lib/digest.js';
import { createBlobFetcher } from '../../src/registry/index.js';
import { makeRegistry } from '../helpers/client.js';
import { pushBlob, patternBytes } from '../helpers/images.js';
import { type RunningRegistry, startRegistry } from '../helpers/registry.js';
import { type TokenService, startTokenService } from '../helpers/token-service.js';
import { tempDir } from '../helpers/tmp.js';

const run = promisify(execFile);
const CLI = join(import.meta.dirname, '../../../dist/cli/main.js');
const BLOB = patternBytes(4 << 20, 42);

let dir: { path: string; cleanup: () => Promise<void> };
let storage: string;
let open: RunningRegistry;
let digest: string;
const stops: (() => Promise<void>)[] = [];

before(async () => {
  dir = await tempDir('auth');
  storage = join(dir.path, 'storage');
  open = await startRegistry({ root: storage, workDir: dir.path });
  stops.push(open.stop);
  digest = await pushBlob(open.url, 'test/auth', BLOB);
});

after(async () => {
  for (const s of stops.reverse()) await s();
  await dir?.cleanup();
});

async function tokenRegistry(opts: { users?: Record<string, string>; expiresIn?: number; post?: 'ok' | 404 | 405 }): Promise<{ ts: TokenService; reg: RunningRegistry }> {
  const work = join(dir.path, `ts-${stops.length}`);
  await run('mkdir', ['-p', work]);
  const ts = await startTokenService({ workDir: work, service: 'regfs-test', issuer: 'regfs-issuer', ...opts });
  const reg = await startRegistry({
    root: storage,
    workDir: work,
    auth: { kind: 'token', realm: ts.realm, service: 'regfs-test', issuer: 'regfs-issuer', certPath: ts.certPath },
  });
  stops.push(ts.close, reg.stop);
  return { ts, reg };
}

test('token registry: 64 concurrent cold readAt calls make exactly 1 token request', async () => {
  const { ts, reg } = await tokenRegistry({});
  const { registry, counted } = makeRegistry();
  try {
    const f = createBlobFetcher(registry.client, { endpoint: reg.host, repository: 'test/auth' });
    const d = parseDigest(digest);
    const results = await Promise.all(
      Array.from({ length: 64 }, async (_v, i) => {
        const buf = Buffer.alloc(4096);
        await f.readAt(d, i * 65536, buf);
        return buf.equals(BLOB.subarray(i * 65536, i * 65536 + 4096));
      }),
    );
    assert.deepEqual(results.filter((ok) => !ok), []);
    assert.equal(ts.requests.length, 1, `token requests: ${JSON.stringify(ts.requests)}`);
    assert.equal(counted.tokens, 1);
    // Only the gated first request met a 401.
    assert.equal(counted.requests.filter((r) => r.status === 401).length, 1);
  } finally {
    await registry.close();
  }
});

test('token registry: with expires_in 2, a 10-second read loop never fails and refreshes tokens', async () => {
  const { ts, reg } = await tokenRegistry({ expiresIn: 2 });
  const { registry, counted } = makeRegistry();
  try {
    const f = createBlobFetcher(registry.client, { endpoint: reg.host, repository: 'test/auth' });
    const d = parseDigest(digest);
    const until = Date.now() + 10_000;
    let reads = 0;
    while (Date.now() < until) {
      const buf = Buffer.alloc(1024);
      const off = (reads * 7919) % (BLOB.length - 1024);
      assert.equal(await f.readAt(d, off, buf), 1024);
      assert.ok(buf.equals(BLOB.subarray(off, off + 1024)));
      reads++;
      await new Promise((r) => setTimeout(r, 50));
    }
    assert.ok(reads > 50, `reads ${reads}`);
    assert.ok(ts.requests.length >= 4, `expected token refreshes, got ${ts.requests.length}`);
    assert.equal(counted.requests.filter((r) => r.status === 401).length, 1, 'only the very first request met a 401');
  } finally {
    await registry.close();
  }
});

test('token endpoint that refuses POST is used via GET, and the second fetch goes straight to GET', async () => {
  for (const status of [404, 405] as const) {
    const { ts, reg } = await tokenRegistry({ users: { alice: 's3cret' }, post: status, expiresIn: 1 });
    const { registry } = makeRegistry({ hosts: { [reg.host]: { username: 'alice', password: 's3cret' } } });
    try {
      const f = createBlobFetcher(registry.client, { endpoint: reg.host, repository: 'test/auth' });
      const d = parseDigest(digest);
      const buf = Buffer.alloc(100);
      await f.readAt(d, 0, buf);
      assert.ok(buf.equals(BLOB.subarray(0, 100)));
      assert.deepEqual(ts.requests.map((r) => `${r.method} ${r.status}`), [`POST ${status}`, 'GET 200']);
      await new Promise((r) => setTimeout(r, 1100)); // token expired: a second fetch is needed
      await f.readAt(d, 100, buf);
      assert.deepEqual(ts.requests.map((r) => `${r.method} ${r.status}`), [`POST ${status}`, 'GET 200', 'GET 200']);
    } finally {
      await registry.close();
    }
  }
});

test('token endpoint that takes POST keeps using POST with credentials', async () => {
  const { ts, reg } = await tokenRegistry({ users: { bob: 'pw' } });
  const { registry } = makeRegistry({ hosts: { [reg.host]: { username: 'bob', password: 'pw' } } });
  try {
    const f = createBlobFetcher(registry.client, { endpoint: reg.host, repository: 'test/auth' });
    const buf = Buffer.alloc(10);
    await f.readAt(parseDigest(digest), 0, buf);
    assert.deepEqual(ts.requests.map((r) => `${r.method} ${r.status}`), ['POST 200']);
  } finally {
    await registry.close();
  }
});

test('token service answering garbage JSON gives a clear authentication error', async () => {
  const { ts, reg } = await tokenRegistry({});
  ts.faults.push('garbage');
  const { registry } = makeRegistry();
  try {
    const f = createBlobFetcher(registry.client, { endpoint: reg.host, repository: 'test/auth' });
    await assert.rejects(f.readAt(parseDigest(digest), 0, Buffer.alloc(10)), (e: Error & { code: string }) => e.code === 'ERR_AUTH_FAILED' && /invalid JSON/.test(e.message));
    // The gate lets the next request try again, and it succeeds.
    const buf = Buffer.alloc(10);
    await f.readAt(parseDigest(digest), 0, buf);
    assert.ok(buf.equals(BLOB.subarray(0, 10)));
  } finally {
    await registry.close();
  }
});

test('htpasswd registry: credentials from a docker config.json work; a wrong password fails fast and clearly', async () => {
  const htpasswd = join(dir.path, 'htpasswd');
  const { stdout } = await run('htpasswd', ['-Bbn', 'carol', 'right-pass']);
  await writeFile(htpasswd, stdout);
  const reg = await startRegistry({ root: storage, workDir: dir.path, auth: { kind: 'htpasswd', path: htpasswd } });
  stops.push(reg.stop);
  const good = join(dir.path, 'docker-good.json');
  const bad = join(dir.path, 'docker-bad.json');
  const auth = (u: string, p: string): string => Buffer.from(`${u}:${p}`).toString('base64');
  await writeFile(good, JSON.stringify({ auths: { [`http://${reg.host}`]: { auth: auth('carol', 'right-pass') } } }));
  await writeFile(bad, JSON.stringify({ auths: { [reg.host]: { auth: auth('carol', 'wrong-pass') } } }));

  const ok = await run('sh', ['-c', `node ${CLI} blob ${reg.host}/test/auth ${digest} --docker-config ${good} --cache-dir ${join(dir.path, 'cache-good')} --log-level warn | sha256sum`]);
  assert.equal(`sha256:${ok.stdout.split(' ')[0]}`, digest);

  const t0 = Date.now();
  const failed = await run('node', [CLI, 'blob', `${reg.host}/test/auth`, digest, '--docker-config', bad, '--cache-dir', join(dir.path, 'cache-bad'), '--log-level', 'warn']).then(
    () => ({ code: 0, stderr: '' }),
    (e: { code: number; stderr: string }) => e,
  );
  const took = Date.now() - t0;
  assert.equal(failed.code, 1);
  assert.match(failed.stderr, new RegExp(`authentication failed for ${reg.host.replace(/\./g, '\\.')}: wrong username or password`));
  assert.ok(took < 5000, `took ${took} ms`);
  assert.doesNotMatch(failed.stderr, /wrong-pass/);
  const log = await readFile(reg.logPath, 'utf8');
  const attempts = log.split('\n').filter((l) => l.includes('/v2/test/auth/blobs/') && l.includes('carol')).length;
  assert.ok(attempts <= 2, `no retry storm: ${attempts} authenticated attempts`);
});

test('credential helpers: credHelpers supplies the password; a failing helper is a clear error', async () => {
  const htpasswd = join(dir.path, 'htpasswd-helper');
  await writeFile(htpasswd, (await run('htpasswd', ['-Bbn', 'erin', 'helper-pass'])).stdout);
  const reg = await startRegistry({ root: storage, workDir: dir.path, auth: { kind: 'htpasswd', path: htpasswd } });
  stops.push(reg.stop);
  const bin = join(dir.path, 'bin');
  await run('mkdir', ['-p', bin]);
  // The docker-credential-helpers protocol: `get`, server URL on stdin, JSON on stdout.
  await writeFile(join(bin, 'docker-credential-regfstest'), '#!/bin/sh\nread host\necho "{\\"ServerURL\\":\\"$host\\",\\"Username\\":\\"erin\\",\\"Secret\\":\\"helper-pass\\"}"\n', { mode: 0o755 });
  await writeFile(join(bin, 'docker-credential-broken'), '#!/bin/sh\necho "keychain locked" >&2\nexit 3\n', { mode: 0o755 });
  const helperCfg = join(dir.path, 'docker-helper.json');
  await writeFile(helperCfg, JSON.stringify({ credHelpers: { [reg.host]: 'regfstest' } }));
  const env = { ...process.env, PATH: `${bin}:${process.env['PATH']}` };
  const ok = await run('sh', ['-c', `node ${CLI} blob ${reg.host}/test/auth ${digest} --docker-config ${helperCfg} --cache-dir ${join(dir.path, 'cache-helper')} --log-level warn | sha256sum`], { env });
  assert.equal(`sha256:${ok.stdout.split(' ')[0]}`, digest);
  // Access-log lines only ("HEAD /v2/… HTTP/1.1"): one per request.
  const requestLines = async (): Promise<string[]> => (await readFile(reg.logPath, 'utf8')).split('\n').filter((l) => / \/v2\/test\/auth\/blobs\/\S+ HTTP\//.test(l));
  const logBefore = (await requestLines()).length;
  const brokenCfg = join(dir.path, 'docker-broken.json');
  await writeFile(brokenCfg, JSON.stringify({ credsStore: 'broken' }));
  const bad = await run('node', [CLI, 'blob', `${reg.host}/test/auth`, digest, '--docker-config', brokenCfg, '--cache-dir', join(dir.path, 'cache-broken')], { env }).then(
    () => ({ code: 0, stderr: '' }),
    (e: { code: number; stderr: string }) => e,
  );
  assert.equal(bad.code, 1);
  assert.match(bad.stderr, /credential helper docker-credential-broken failed for .*exit 3: keychain locked/);
  // No storm of anonymous retries: the one unauthenticated request that met the challenge, nothing more.
  const attempts = (await requestLines()).slice(logBefore);
  assert.ok(attempts.length <= 1, `${attempts.length} blob requests after the helper failed:\n${attempts.join('\n')}`);
});
