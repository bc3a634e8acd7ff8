import { test } from 'node:test';
import assert from 'node:assert/strict';
import { backoffDelay, parseRetryAfter, withRetries, isTransient } from '../../src/registry/retry.js';
import { HttpStatusError, NotFoundError, isTransientStatus } from '../../src/lib/errors.js';

test('Retry-After accepts seconds and HTTP dates', () => {
  const now = Date.parse('2026-01-01T00:00:00Z');
  assert.equal(parseRetryAfter('3', now), 3000);
  assert.equal(parseRetryAfter('Thu, 01 Jan 2026 00:00:05 GMT', now), 5000);
  assert.equal(parseRetryAfter('Wed, 31 Dec 2025 00:00:00 GMT', now), 0);
  assert.equal(parseRetryAfter('soon', now), undefined);
  assert.equal(parseRetryAfter(undefined, now), undefined);
});

test('transient and permanent statuses', () => {
  for (const s of [500, 502, 503, 504, 408, 425, 429, 499]) assert.equal(isTransientStatus(s), true, String(s));
  for (const s of [400, 401, 403, 404, 405, 410, 416, 501, 505, 511]) assert.equal(isTransientStatus(s), false, String(s));
  assert.equal(isTransient(Object.assign(new Error('x'), { code: 'ECONNRESET' })), true);
  assert.equal(isTransient(new Error('plain')), false);
});

test('backoff is full jitter capped by maxDelay', () => {
  const p = { budgetMs: 1000, baseDelayMs: 100, maxDelayMs: 400 };
  assert.equal(backoffDelay(0, p, () => 0.999), 99);
  assert.equal(backoffDelay(5, p, () => 0.5), 200);
  assert.equal(backoffDelay(3, p, () => 0), 0);
});

test('withRetries retries transient errors and stops at permanent ones', async () => {
  let calls = 0;
  const v = await withRetries(
    async () => {
      calls++;
      if (calls < 3) throw new HttpStatusError(503, {});
      return 'ok';
    },
    { policy: { budgetMs: 5000, baseDelayMs: 1, maxDelayMs: 2 } },
  );
  assert.equal(v, 'ok');
  assert.equal(calls, 3);
  calls = 0;
  await assert.rejects(
    withRetries(async () => {
      calls++;
      throw new NotFoundError('blob', {});
    }, { policy: { budgetMs: 5000, baseDelayMs: 1, maxDelayMs: 2 } }),
    { code: 'ERR_NOT_FOUND' },
  );
  assert.equal(calls, 1);
});

test('withRetries gives up when the budget is spent, even on a hung attempt', async () => {
  // AbortSignal.timeout does not keep the loop alive; a real hung socket would.
  const keepAlive = setInterval(() => {}, 1000);
  const t0 = Date.now();
  await assert.rejects(
    withRetries((signal) => new Promise((_r, reject) => signal.addEventListener('abort', () => reject(new Error('aborted')))), {
      policy: { budgetMs: 300, baseDelayMs: 1, maxDelayMs: 2 },
    }),
    { code: 'ERR_RETRY_BUDGET' },
  );
  const took = Date.now() - t0;
  clearInterval(keepAlive);
  assert.ok(took >= 290 && took < 1500, `took ${took} ms`);
});

test('a Retry-After longer than the remaining budget fails at once', async () => {
  const t0 = Date.now();
  await assert.rejects(
    withRetries(async () => {
      throw new HttpStatusError(429, {}, '', 60_000);
    }, { policy: { budgetMs: 2000, baseDelayMs: 1, maxDelayMs: 2 } }),
    { code: 'ERR_RETRY_BUDGET' },
  );
  assert.ok(Date.now() - t0 < 500);
});
