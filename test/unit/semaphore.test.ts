import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Semaphore } from '../../src/lib/semaphore.js';

/** Lets every settled promise's callbacks run. */
const tick = () => new Promise((r) => setImmediate(r));

test('limit 2: the first 2 acquire at once, the 3rd waits until one releases', async () => {
  const s = new Semaphore(2);
  const a = await s.acquire().ready;
  const b = await s.acquire().ready;
  assert.equal(s.inUse, 2);
  let third = false;
  const c = s.acquire().ready.then((rel) => ((third = true), rel));
  await tick();
  assert.equal(third, false);
  a();
  const rc = await c;
  assert.equal(third, true);
  assert.equal(s.inUse, 2, 'the slot passed straight to the waiter');
  b();
  rc();
  assert.equal(s.inUse, 0);
});

test('urgent waiters go before background ones, FIFO within each class: order u1 u2 b1 b2', async () => {
  const s = new Semaphore(1);
  const hold = await s.acquire().ready;
  const order: string[] = [];
  const wait = (name: string, urgent: boolean) =>
    s.acquire(urgent).ready.then((release) => {
      order.push(name);
      release();
    });
  const all = [wait('b1', false), wait('u1', true), wait('b2', false), wait('u2', true)];
  await tick();
  assert.deepEqual(order, []);
  hold();
  await Promise.all(all);
  assert.deepEqual(order, ['u1', 'u2', 'b1', 'b2']);
  assert.equal(s.inUse, 0);
});

test('promote: a background waiter a reader now depends on moves behind the urgent ones, ahead of other background', async () => {
  const s = new Semaphore(1);
  const hold = await s.acquire().ready;
  const order: string[] = [];
  const mk = (name: string, urgent: boolean) => {
    const t = s.acquire(urgent);
    return { t, done: t.ready.then((release) => (order.push(name), release())) };
  };
  const b1 = mk('b1', false);
  const b2 = mk('b2', false);
  const u1 = mk('u1', true);
  b2.t.promote();
  b2.t.promote(); // twice is harmless
  hold();
  await Promise.all([b1.done, b2.done, u1.done]);
  assert.deepEqual(order, ['u1', 'b2', 'b1']);
});

test('a release called twice frees one slot, not two; promote on a granted ticket is a no-op', async () => {
  const s = new Semaphore(1);
  const t = s.acquire(false);
  const release = await t.ready;
  t.promote();
  let next = false;
  const waiter = s.acquire().ready.then((r) => ((next = true), r));
  release();
  release();
  const r2 = await waiter;
  assert.equal(next, true);
  assert.equal(s.inUse, 1, 'the second release did not free the waiter\'s slot');
  let another = false;
  void s.acquire().ready.then(() => (another = true));
  await tick();
  assert.equal(another, false);
  r2();
  await tick();
  assert.equal(another, true);
});

test('run: releases on success and on failure (3 failing runs leave 0 in use)', async () => {
  const s = new Semaphore(2);
  for (let i = 0; i < 3; i++) await assert.rejects(s.run(async () => { throw new Error(`boom ${i}`); }), /boom/);
  assert.equal(s.inUse, 0);
  assert.equal(await s.run(async () => 42), 42);
  assert.equal(s.inUse, 0);
});
