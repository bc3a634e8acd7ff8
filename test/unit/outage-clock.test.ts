import { test } from 'node:test';
import assert from 'node:assert/strict';
import { OutageClock, withRetries } from '../../src/registry/retry.js';
import { HttpStatusError } from '../../src/lib/errors.js';

test('outage clock: reads during an outage share its 30 s budget; past it, one 2 s try; an answer ends the outage', () => {
  let now = 1_000_000;
  const clock = new OutageClock(30_000, 2_000, () => now);
  assert.equal(clock.deadline('r'), now + 30_000, 'no outage: the full budget');
  clock.failed('r');
  const start = now;
  now += 20_000;
  assert.equal(clock.deadline('r'), start + 30_000, '20 s into the outage: 10 s left');
  clock.failed('r');
  assert.equal(clock.deadline('r'), start + 30_000, 'a later failure does not restart the outage');
  now += 15_000;
  assert.equal(clock.deadline('r'), now + 2_000, 'past the budget: one short try');
  assert.equal(clock.deadline('other'), now + 30_000, 'other hosts are not affected');
  clock.answered('r');
  assert.equal(clock.deadline('r'), now + 30_000, 'after an answer: the full budget again');
});

test('withRetries stops at a shared deadline: 300 ms away, a 503 loop with a 5 s budget gives up in under 2 s', async () => {
  const t0 = Date.now();
  let calls = 0;
  await assert.rejects(
    withRetries(
      async () => {
        calls++;
        throw new HttpStatusError(503, {});
      },
      { policy: { budgetMs: 5000, baseDelayMs: 20, maxDelayMs: 40 }, deadline: t0 + 300 },
    ),
    { code: 'ERR_RETRY_BUDGET' },
  );
  const elapsed = Date.now() - t0;
  assert.ok(elapsed < 2000, `gave up after ${elapsed} ms`);
  assert.ok(calls >= 2, `${calls} attempts`);
});
