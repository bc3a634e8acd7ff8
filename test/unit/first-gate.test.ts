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
  assert.equal(maxRunning, 63, 'after the first success the other 63 run at once');
  assert.equal(gate.completed, true);
});

test('when the first fails, the next waiter becomes first: 2 failures and 1 success run alone, then the other 7 at once', async () => {
  const gate = new FirstGate();
  let calls = 0;
  let concurrent = 0;
  let maxConcurrent = 0;
  /** How many were running (itself included) when each call started. */
  const startedWith: number[] = [];
  const work = async (): Promise<string> => {
    calls++;
    concurrent++;
    startedWith.push(concurrent);
    maxConcurrent = Math.max(maxConcurrent, concurrent);
    const mine = calls;
    await new Promise((r) => setTimeout(r, 5));
    concurrent--;
    if (mine <= 2) throw new Error(`fail ${mine}`);
    return 'ok';
  };
  const results = await Promise.allSettled(Array.from({ length: 10 }, () => gate.run(work)));
  assert.equal(results.filter((r) => r.status === 'rejected').length, 2);
  assert.equal(results.filter((r) => r.status === 'fulfilled').length, 8);
  assert.equal(calls, 10);
  assert.deepEqual(startedWith.slice(0, 3), [1, 1, 1], 'each would-be first ran alone');
  assert.equal(maxConcurrent, 7, 'once one succeeded, the 7 still waiting ran together');
  assert.equal(gate.completed, true);
});
