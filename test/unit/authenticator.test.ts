import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Authenticator } from '../../src/registry/authenticator.js';
import type { Credential } from '../../src/registry/credentials.js';
import type { Token, TokenRequest } from '../../src/registry/token-client.js';
import { AuthError } from '../../src/lib/errors.js';

const HOST = 'r.example:5000';
const CHALLENGE = 'Bearer realm="https://auth.example/token",service="r.example",scope="repository:app:pull"';
const SCOPE = 'repository:app:pull';
const never = new AbortController().signal;

/** A token service that counts fetches, answers after `delayMs` with token-1, token-2, … living `lifeS` seconds. */
function tokenService(opts: { delayMs?: number; lifeS?: number; now: () => number; fail?: number } = { now: Date.now }) {
  const calls: { req: TokenRequest; cred: Credential | undefined }[] = [];
  return {
    calls,
    tokens: {
      fetch: async (req: TokenRequest, cred: Credential | undefined): Promise<Token> => {
        calls.push({ req, cred });
        if (opts.delayMs) await new Promise((r) => setTimeout(r, opts.delayMs));
        if (opts.fail && calls.length <= opts.fail) throw new AuthError(HOST, `token service down (${calls.length})`);
        const at = opts.now();
        return { token: `token-${calls.length}`, issuedAt: at, expiresAt: at + (opts.lifeS ?? 60) * 1000 };
      },
    },
  };
}

const creds = (c: Credential | undefined) => ({ get: async () => c });

test('before any challenge no header is sent; a Bearer challenge fetches one token for its realm, service and scope', async () => {
  const svc = tokenService();
  const auth = new Authenticator({ credentials: creds(undefined), tokens: svc.tokens });
  assert.equal(await auth.authorization(HOST, SCOPE, never), undefined);
  assert.equal(await auth.challenged(HOST, SCOPE, CHALLENGE, undefined, never), 'Bearer token-1');
  assert.deepEqual(svc.calls[0]!.req, { realm: 'https://auth.example/token', service: 'r.example', scope: SCOPE });
  // Remembered: later requests carry the cached token up front, without another fetch.
  assert.equal(await auth.authorization(HOST, SCOPE, never), 'Bearer token-1');
  assert.equal(svc.calls.length, 1);
});

test('64 concurrent requests after the challenge share 1 token fetch', async () => {
  const svc = tokenService({ delayMs: 20, now: Date.now });
  const auth = new Authenticator({ credentials: creds(undefined), tokens: svc.tokens });
  const all = await Promise.all(Array.from({ length: 64 }, () => auth.challenged(HOST, SCOPE, CHALLENGE, undefined, never)));
  assert.equal(svc.calls.length, 1);
  assert.deepEqual(new Set(all), new Set(['Bearer token-1']));
});

test('a failed token fetch is forgotten: the next request fetches again (2 calls) and succeeds', async () => {
  const svc = tokenService({ now: Date.now, fail: 1 });
  const auth = new Authenticator({ credentials: creds(undefined), tokens: svc.tokens });
  await assert.rejects(auth.challenged(HOST, SCOPE, CHALLENGE, undefined, never), /token service down \(1\)/);
  assert.equal(await auth.challenged(HOST, SCOPE, CHALLENGE, undefined, never), 'Bearer token-2');
  assert.equal(svc.calls.length, 2);
});

test('refresh: a 60 s token is reused for 45 s; with 15 s (a quarter) left it is refreshed while the old one still serves', async () => {
  let now = 1_000_000;
  const svc = tokenService({ now: () => now, lifeS: 60 });
  const auth = new Authenticator({ credentials: creds(undefined), tokens: svc.tokens, now: () => now });
  await auth.challenged(HOST, SCOPE, CHALLENGE, undefined, never);
  now += 44_999;
  assert.equal(await auth.authorization(HOST, SCOPE, never), 'Bearer token-1');
  assert.equal(svc.calls.length, 1);
  now += 1;
  assert.equal(await auth.authorization(HOST, SCOPE, never), 'Bearer token-1', 'no request waits for the refresh');
  assert.equal(svc.calls.length, 2, 'the refresh started at 45 s');
  await new Promise((r) => setImmediate(r));
  assert.equal(await auth.authorization(HOST, SCOPE, never), 'Bearer token-2');
  assert.equal(svc.calls.length, 2);
  // Within the last second the old token is not used any more: the request waits for a new one.
  now += 60_000 - 1000;
  assert.equal(await auth.authorization(HOST, SCOPE, never), 'Bearer token-3');
});

test('a 401 for the cached token drops it and fetches a new one; other scopes keep theirs', async () => {
  const svc = tokenService();
  const auth = new Authenticator({ credentials: creds(undefined), tokens: svc.tokens });
  const other = 'Bearer realm="https://auth.example/token",service="r.example",scope="repository:other:pull"';
  assert.equal(await auth.challenged(HOST, 'repository:other:pull', other, undefined, never), 'Bearer token-1');
  const first = await auth.challenged(HOST, SCOPE, CHALLENGE, undefined, never);
  assert.equal(first, 'Bearer token-2');
  const again = await auth.challenged(HOST, SCOPE, CHALLENGE, first, never);
  assert.equal(again, 'Bearer token-3');
  assert.equal(await auth.authorization(HOST, 'repository:other:pull', never), 'Bearer token-1');
  assert.equal(svc.calls.length, 3);
});

test('credentials go to the token service, never into the registry header; a registry token is used as is', async () => {
  const svc = tokenService();
  const user = { username: 'u', password: 'p' };
  const auth = new Authenticator({ credentials: creds(user), tokens: svc.tokens });
  assert.equal(await auth.challenged(HOST, SCOPE, CHALLENGE, undefined, never), 'Bearer token-1');
  assert.deepEqual(svc.calls[0]!.cred, user);
  const withToken = new Authenticator({ credentials: creds({ registryToken: 'rt' }), tokens: svc.tokens });
  assert.equal(await withToken.challenged(HOST, SCOPE, CHALLENGE, undefined, never), 'Bearer rt');
  assert.equal(svc.calls.length, 1, 'no token fetch for a registry token');
  const fixed = new Authenticator({ credentials: creds(undefined), tokens: svc.tokens, staticTokens: { [HOST]: 'static' } });
  assert.equal(await fixed.authorization(HOST, SCOPE, never), 'Bearer static');
});

test('Basic: the header from the credentials; the same header refused again is "wrong username or password" (credentials rejected)', async () => {
  const svc = tokenService();
  const auth = new Authenticator({ credentials: creds({ username: 'u', password: 'p' }), tokens: svc.tokens });
  const h = await auth.challenged(HOST, SCOPE, 'Basic realm="x"', undefined, never);
  assert.equal(h, `Basic ${Buffer.from('u:p').toString('base64')}`);
  assert.equal(await auth.authorization(HOST, SCOPE, never), h);
  await assert.rejects(auth.challenged(HOST, SCOPE, 'Basic realm="x"', h, never), (e: AuthError) => e.credentialsRejected && /wrong username or password for user "u"/.test(e.message));
  const anon = new Authenticator({ credentials: creds(undefined), tokens: svc.tokens });
  await assert.rejects(anon.challenged(HOST, SCOPE, 'Basic realm="x"', undefined, never), /requires a username and password/);
  assert.equal(svc.calls.length, 0);
});

test('bad challenges: Bearer without realm, an unknown scheme, none at all — each its own AuthError', async () => {
  const auth = new Authenticator({ credentials: creds(undefined), tokens: tokenService().tokens });
  await assert.rejects(auth.challenged(HOST, SCOPE, 'Bearer service="s"', undefined, never), /Bearer challenge without a realm/);
  await assert.rejects(auth.challenged(HOST, SCOPE, 'Negotiate abc', undefined, never), /unsupported challenge "Negotiate"/);
  await assert.rejects(auth.challenged(HOST, SCOPE, undefined, undefined, never), /401 without a WWW-Authenticate challenge/);
});

test('a waiter that gives up does not cancel the shared fetch: the other 3 get the token', async () => {
  const svc = tokenService({ delayMs: 50, now: Date.now });
  const auth = new Authenticator({ credentials: creds(undefined), tokens: svc.tokens });
  const impatient = new AbortController();
  const first = auth.challenged(HOST, SCOPE, CHALLENGE, undefined, impatient.signal);
  const others = Array.from({ length: 3 }, () => auth.challenged(HOST, SCOPE, CHALLENGE, undefined, never));
  impatient.abort(new Error('reader gone'));
  await assert.rejects(first, /reader gone/);
  assert.deepEqual(await Promise.all(others), ['Bearer token-1', 'Bearer token-1', 'Bearer token-1']);
  assert.equal(svc.calls.length, 1);
});
