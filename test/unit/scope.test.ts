import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Scope, withScope } from '../../src/daemon/scope.js';
import { silentLogger } from '../../src/lib/logger.js';

test('scope: 3 resources are released in reverse order, once, even when one release fails and close is called twice', async () => {
  const log: string[] = [];
  const scope = new Scope(silentLogger);
  await scope.use('a', () => 'A', (v) => void log.push(`close ${v}`));
  await scope.use('b', async () => 'B', () => {
    log.push('close B');
    throw new Error('b fails');
  });
  scope.defer('c', () => void log.push('close C'));
  await Promise.all([scope.close(), scope.close()]);
  await scope.close();
  assert.deepEqual(log, ['close C', 'close B', 'close A']);
  // Acquired after close began (a start-up step that finished late): released at once.
  scope.defer('late', () => void log.push('close late'));
  await new Promise((r) => setImmediate(r));
  assert.deepEqual(log.slice(3), ['close late']);
});

test('scope: the first stop reason wins; withScope releases when its body throws', async () => {
  const scope = new Scope(silentLogger);
  scope.stop({ kind: 'unmounted', mountpoint: '/m' });
  scope.stop({ kind: 'signal', signal: 'SIGTERM' });
  assert.deepEqual(await scope.stopped, { kind: 'unmounted', mountpoint: '/m' });
  const log: string[] = [];
  await assert.rejects(
    withScope(silentLogger, async (s) => {
      s.defer('x', () => void log.push('released'));
      throw new Error('start-up failed');
    }),
    /start-up failed/,
  );
  assert.deepEqual(log, ['released']);
});
