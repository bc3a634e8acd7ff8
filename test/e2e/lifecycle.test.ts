import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { patternBytes, pushRawImage } from '../helpers/images.js';
import { CLI, forceUnmount, isMounted, makeMountpoint, startMount } from '../helpers/mount.js';
import { type RunningRegistry, startRegistry } from '../helpers/registry.js';
import { tempDir, waitFor } from '../helpers/tmp.js';

const run = promisify(execFile);

let dir: { path: string; cleanup: () => Promise<void> };
let reg: RunningRegistry;
let ref: string;
const mounts: string[] = [];

before(async () => {
  dir = await tempDir('e2e-lifecycle');
  reg = await startRegistry({ root: join(dir.path, 'storage'), workDir: dir.path });
  await pushRawImage(reg.url, 'life/raw', 'v1', [patternBytes(1 << 20, 3)]);
  ref = `${reg.host}/life/raw:v1`;
});

after(async () => {
  for (const m of mounts) await forceUnmount(m);
  await reg?.stop();
  await dir?.cleanup();
});

const UNMOUNTS: Record<string, (mnt: string) => Promise<unknown>> = {
  'regfs unmount': (mnt) => run('node', [CLI, 'unmount', mnt]),
  'fusermount -u': (mnt) => run('fusermount', ['-u', mnt]),
  'umount -l': (mnt) => run('umount', ['-l', mnt]),
};

/** Pids of `regfs mount … --daemon-child` processes for `mnt` (this test's own, by mountpoint). */
async function daemonChildPids(mnt: string): Promise<number[]> {
  const pids: number[] = [];
  for (const p of await readdir('/proc')) {
    if (!/^\d+$/.test(p)) continue;
    const argv = (await readFile(`/proc/${p}/cmdline`, 'latin1').catch(() => '')).split('\0');
    if (argv.includes('--daemon-child') && argv.includes(mnt)) pids.push(Number(p));
  }
  return pids;
}

test('unmounted from outside (regfs unmount, fusermount -u, umount -l): the foreground daemon exits 0 within 2 s and the same cache dir mounts again', async () => {
  const cache = join(dir.path, 'cache-fg');
  const mnt = await makeMountpoint(dir.path, 'fg', mounts);
  for (const [how, unmount] of Object.entries(UNMOUNTS)) {
    const m = await startMount(ref, mnt, ['--cache-dir', cache, '--log-level', 'info']);
    try {
      const exited = new Promise<[number | null, string | null]>((r) => m.child.once('exit', (c, s) => r([c, s])));
      assert.equal((await readFile(join(mnt, 'blobs', (await readdir(join(mnt, 'blobs')))[0]!))).length > 0, true);
      await unmount(mnt);
      const t0 = Date.now();
      const timeout = new Promise<'timeout'>((r) => setTimeout(() => r('timeout'), 2000).unref());
      const outcome = await Promise.race([exited, timeout]);
      assert.notEqual(outcome, 'timeout', `${how}: still running 2 s after the unmount; stderr:\n${m.stderr()}`);
      assert.deepEqual(outcome, [0, null], `${how}: exit code; stderr:\n${m.stderr()}`);
      assert.ok(Date.now() - t0 <= 2000);
      const lines = m.stderr().split('\n').filter((l) => l.includes('unmounted from outside'));
      assert.equal(lines.length, 1, `${how}: one log line says why it exited`);
      assert.equal(await isMounted(mnt), false);
    } finally {
      await m.stop();
    }
  }
  // The lock went with the last daemon: the same cache dir mounts once more.
  const again = await startMount(ref, mnt, ['--cache-dir', cache, '--log-level', 'warn']);
  assert.deepEqual(await again.stop(), [0, null]);
});

test('--daemon: after regfs unmount the detached daemon exits within 2 s and its cache dir mounts again', async () => {
  const cache = join(dir.path, 'cache-bg');
  const log = join(dir.path, 'bg.log');
  const mnt = await makeMountpoint(dir.path, 'bg', mounts);
  const { stdout } = await run('node', [CLI, 'mount', ref, mnt, '--daemon', '--cache-dir', cache, '--log-file', log]);
  // Should this test fail, its detached daemons must not outlive it.
  const leftovers = async (): Promise<void> => {
    for (const pid of await daemonChildPids(mnt)) process.kill(pid, 'SIGTERM');
  };
  try {
    assert.match(stdout, /^regfs: mounted /);
    const pids = await daemonChildPids(mnt);
    assert.equal(pids.length, 1, 'one daemon child runs');
    await run('node', [CLI, 'unmount', mnt]);
    const t0 = Date.now();
    await waitFor('the daemon child to exit', async () => (await daemonChildPids(mnt)).length === 0, 2000);
    assert.ok(Date.now() - t0 <= 2000);
    assert.equal((await readFile(log, 'utf8')).split('\n').filter((l) => l.includes('unmounted from outside; exiting')).length, 1);
    const again = await run('node', [CLI, 'mount', ref, mnt, '--daemon', '--cache-dir', cache]);
    assert.match(again.stdout, /^regfs: mounted /);
    await run('node', [CLI, 'unmount', mnt]);
    await waitFor('the second daemon child to exit', async () => (await daemonChildPids(mnt)).length === 0, 2000);
  } finally {
    await leftovers();
  }
});

test('serve: its store unmounted from outside is an error exit (code 1, ERR_UNMOUNTED) within 2 s', async () => {
  const store = join(dir.path, 'store');
  mounts.push(store);
  const cacheDir = join(dir.path, 'cache-serve');
  const cfg = join(dir.path, 'serve.yaml');
  await writeFile(cfg, JSON.stringify({ store, cacheDir, logLevel: 'info' }));
  const child = spawn('node', [CLI, 'serve', '--config', cfg], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
  const exited = new Promise<[number | null, string | null]>((r) => child.once('exit', (c, s) => r([c, s])));
  try {
    await waitFor('serve ready', async () => {
      if (child.exitCode !== null) throw new Error(`serve exited: ${err}`);
      return out.includes('regfs: serving');
    });
    await run('fusermount', ['-u', store]);
    const timeout = new Promise<'timeout'>((r) => setTimeout(() => r('timeout'), 2000).unref());
    const outcome = await Promise.race([exited, timeout]);
    assert.deepEqual(outcome, [1, null], `stderr:\n${err}`);
    const last = err.trim().split('\n').pop()!;
    assert.equal(last, `regfs: ${store} was unmounted from outside while serving; exiting so that the service manager restarts regfs [ERR_UNMOUNTED]`);
  } finally {
    if (child.exitCode === null) child.kill('SIGTERM');
    await exited;
  }
});

test('--daemon prints the same one-line error and exit code 1 as a foreground mount: 4 bad configs, a missing mountpoint', async () => {
  const mnt = await makeMountpoint(dir.path, 'bad', mounts);
  await writeFile(join(dir.path, 'unknown.yaml'), 'logLevel: warn\nbogusKey: 1\n');
  await writeFile(join(dir.path, 'syntax.yaml'), 'logLevel: [warn\n');
  const cases: [string, string[], RegExp][] = [
    ['a bad flag value', [ref, mnt, '--cache-size', 'lots'], /^regfs: --cache-size must be a size such as 10GiB, 512MiB or 1048576, got "lots" \[ERR_CONFIG\]$/],
    ['an unknown config key', [ref, mnt, '--config', join(dir.path, 'unknown.yaml')], /^regfs: unknown key "bogusKey" in config file .*unknown\.yaml/],
    ['YAML syntax', [ref, mnt, '--config', join(dir.path, 'syntax.yaml')], /^regfs: config file .*syntax\.yaml is not valid YAML\/JSON/],
    ['a missing config file', [ref, mnt, '--config', join(dir.path, 'missing.yaml')], /^regfs: cannot read config file .*missing\.yaml: ENOENT/],
    // Found by the daemon child only, and relayed with its code.
    ['a missing mountpoint', [ref, join(dir.path, 'nope'), '--cache-dir', join(dir.path, 'cache-bad')], /^regfs: mountpoint .*nope: does not exist \(create the directory first\) \[ERR_MOUNTPOINT\]$/],
  ];
  const attempt = (args: string[]): Promise<{ code: number; stderr: string }> =>
    run('node', [CLI, 'mount', ...args]).then(
      () => ({ code: 0, stderr: '' }),
      (e: { code: number; stderr: string }) => ({ code: e.code, stderr: e.stderr }),
    );
  for (const [what, args, re] of cases) {
    const fg = await attempt(args);
    const bg = await attempt([...args, '--daemon']);
    assert.equal(fg.code, 1, `${what}: foreground exit code`);
    assert.match(fg.stderr.trimEnd(), re, what);
    assert.deepEqual(bg, fg, `${what}: --daemon says the same`);
  }
  assert.equal(await isMounted(mnt), false);
});
