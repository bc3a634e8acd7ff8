import { test } from 'node:test';
import assert from 'node:assert/strict';
import { inheritedFds } from '../../src/fs/systemd-fd-store.js';

test('LISTEN_FDS=3 with names a:b:a gives a → fds 3 and 5, b → fd 4; another LISTEN_PID gives nothing', () => {
  const env = { listenPid: '4242', listenFds: '3', listenFdNames: 'a:b:a' };
  assert.deepEqual([...inheritedFds(env, 4242)], [
    ['a', [3, 5]],
    ['b', [4]],
  ]);
  assert.equal(inheritedFds(env, 4243).size, 0);
  assert.equal(inheritedFds({ listenPid: '4242' }, 4242).size, 0);
  assert.deepEqual([...inheritedFds({ listenPid: '1', listenFds: '2' }, 1)], [['unknown', [3, 4]]]);
});
