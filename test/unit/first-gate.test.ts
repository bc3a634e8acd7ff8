import { test } from 'node:test';
import assert from 'node:assert/strict';
import { FirstGate } from '../../src/registry/first-gate.js';

test('64 concurrent callers: exactly one runs until the first succeeds', async () => {
  const gate = new FirstGate();
  let running = 0;
  let maxRunning = 0;
  let release!: () => void;
  const firstDone = new Promise<void>((r) => (release = r));
  let calls = 0;
  const work = async (): Promise<number> => {
    calls++;
    running++;
    maxRunning = Math.max(maxRunning, running);
    if (calls === 1) await firstDone;
    else await new Promise((r) => setTimeout(r, 5));
    running--;
    return calls;
  };
  const all = Array.from({ length: 64 }, () => gate.run(work));
  await new Promise((r) => setTimeout(r, 20));
  assert.equal(calls, 1, 'only the first is in flight while it has not completed');
  release();
  await Promise.all(all);
  assert.equal(calls, 64);
  assert.ok(maxRunning > 1, 'after the first success the rest run concurrently');
  assert.equal(gate.completed, true);
});

test('when the first fails, the next waiter becomes first', async () => {
  const gate = new FirstGate();
  let calls = 0;
  let concurrent = 0;
  let maxConcurrent = 0;
  const work = async (): Promise<string> => {
    calls++;
    concurrent++;
    maxConcurrent = Math.max(maxConcurrent, concurrent);
    await new Promise((r) => setTimeout(r, 5));
    concurrent--;
    if (calls <= 2) throw new Error(`fail ${calls}`);
    return 'ok';
  };
  const results = await Promise.allSettled(Array.from({ length: 10 }, () => gate.run(work)));
  assert.equal(results.filter((r) => r.status === 'rejected').length, 2);
  assert.equal(results.filter((r) => r.status === 'fulfilled').length, 8);
  // Two failures and the third (successful) first all ran alone.
  assert.equal(calls, 10);
  assert.equal(gate.completed, true);
});
