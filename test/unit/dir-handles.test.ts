import { test } from 'node:test';
import assert from 'node:assert/strict';
import { DirHandles } from '../../src/fs/dir-handles.js';

test('a directory handle lists once for all its READDIR calls, a new handle lists again, a released one is forgotten', async () => {
  const calls: string[] = [];
  const dirs = new DirHandles(async (path) => {
    calls.push(path);
    return Array.from({ length: 10_000 }, (_, i) => `${path}/${i}`);
  }, 7n << 32n);
  const a = dirs.opendir();
  const b = dirs.opendir();
  assert.notEqual(a, b);
  assert.equal(a >> 32n, 7n);
  // `ls` of 10,000 entries in ~100 READDIR calls: one listing.
  for (let i = 0; i < 100; i++) assert.equal((await dirs.listing(a, '/big')).length, 10_000);
  assert.deepEqual(calls, ['/big']);
  await dirs.listing(b, '/big');
  assert.deepEqual(calls, ['/big', '/big']);
  dirs.releasedir(a);
  dirs.releasedir(b);
  assert.equal(dirs.size, 0);
});

test('a handle opened by a predecessor lists on its first READDIR; a failed listing is tried again', async () => {
  let fail = true;
  let calls = 0;
  const dirs = new DirHandles(async () => {
    calls++;
    if (fail) throw new Error('EIO');
    return ['x'];
  }, 1n << 32n);
  const inherited = 5n; // handed out by the previous process
  await assert.rejects(dirs.listing(inherited, '/d'), /EIO/);
  await new Promise((r) => setImmediate(r));
  assert.equal(dirs.size, 0);
  fail = false;
  assert.deepEqual(await dirs.listing(inherited, '/d'), ['x']);
  assert.deepEqual(await dirs.listing(inherited, '/d'), ['x']);
  assert.equal(calls, 2);
});
