import { test } from 'node:test';
import assert from 'node:assert/strict';
import { GiveUp, waitFor } from '../helpers/tmp.js';

test('waitFor: a GiveUp from the check ends a 20 s wait at once with its message', async () => {
  const t0 = Date.now();
  let calls = 0;
  await assert.rejects(
    waitFor('a registry', async () => {
      calls++;
      if (calls === 3) throw new GiveUp('docker-registry exited; see r.log');
      throw new Error('ECONNREFUSED');
    }),
    /^GiveUp: docker-registry exited; see r\.log$|docker-registry exited; see r\.log/,
  );
  assert.equal(calls, 3, 'other errors mean "not yet" and are polled again');
  assert.ok(Date.now() - t0 < 2000, `gave up after ${Date.now() - t0} ms`);
});

test('waitFor: a check that never holds times out naming what it waited for', async () => {
  await assert.rejects(waitFor('the moon', async () => false, 120), /timed out waiting for the moon/);
});
