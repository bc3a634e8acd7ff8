import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);
const ROOT = join(import.meta.dirname, '../../..');
const RUNNER = join(ROOT, 'scripts/run-tests.mjs');
const FIXTURE = join(ROOT, 'dist-test/test/fixtures/runner/serve-left-running.js');

test('npm test\'s runner fails (exit 1) when a test leaves a regfs process and its mount behind, names both, and cleans them up; exit 0 when it does not', async () => {
  const leaky = await run('node', [RUNNER, FIXTURE], { env: { ...process.env, LEAVE_IT: '1' } }).then(
    (r) => ({ code: 0, stderr: r.stderr }),
    (e: { code: number; stderr: string }) => ({ code: e.code, stderr: e.stderr }),
  );
  assert.equal(leaky.code, 1, leaky.stderr);
  assert.match(leaky.stderr, /test run left behind 1 regfs process\(es\) and 1 mount\(s\):/);
  assert.match(leaky.stderr, /pid \d+: .*dist\/cli\/main\.js serve --config /);
  assert.match(leaky.stderr, /mount fuse\.regfs at \/tmp\/regfs-test-run-[^/]+\/regfs-runner-[^/]+\/store/);
  const store = /mount fuse\.regfs at (\S+)/.exec(leaky.stderr)![1]!;
  assert.ok(!(await readFile('/proc/self/mountinfo', 'utf8')).includes(` ${store} `), 'the runner unmounted it');

  const clean = await run('node', [RUNNER, FIXTURE], { env: { ...process.env, LEAVE_IT: '' } });
  assert.doesNotMatch(clean.stderr, /left behind/);
});
