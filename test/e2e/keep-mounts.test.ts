import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { readFile, stat, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { fdNameFor } from '../../src/fs/fd-keeper.js';
import { FdHolder } from '../../src/fs/fd-holder.js';
import { longest, mountsAt, startReaders } from '../helpers/handover-readers.js';
import { patternBytes, pushRawImage } from '../helpers/images.js';
import { CLI, forceUnmount, makeMountpoint, type RunningMount, startMount } from '../helpers/mount.js';
import { type RunningRegistry, startRegistry } from '../helpers/registry.js';
import { tempDir, waitFor } from '../helpers/tmp.js';

const run = promisify(execFile);

let dir: { path: string; cleanup: () => Promise<void> };
let reg: RunningRegistry;
let ref: string;
let big: Buffer;
let slow: Buffer;
let digests: string[];
const mounts: string[] = [];

before(async () => {
  dir = await tempDir('e2e-keep');
  reg = await startRegistry({ root: join(dir.path, 'storage'), workDir: dir.path });
  big = patternBytes(100 << 20, 11);
  slow = patternBytes(4 << 20, 12);
  const pushed = await pushRawImage(reg.url, 'keep/raw', 'v1', [big, slow]);
  digests = pushed.layers.map((l) => l.digest);
  ref = `${reg.host}/keep/raw:v1`;
});

after(async () => {
  for (const m of mounts) await forceUnmount(m);
  await reg?.stop();
  await dir?.cleanup();
});

/** A regfs process under test: `regfs mount` (RunningMount) or `regfs serve`, same shape. */
type Proc = Pick<RunningMount, 'child' | 'stderr' | 'stop'>;

async function startServe(cfgPath: string): Promise<Proc> {
  const child = spawn(process.execPath, [CLI, 'serve', '--config', cfgPath], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
  const exited = new Promise<[number | null, NodeJS.Signals | null]>((r) => child.once('exit', (c, sig) => r([c, sig])));
  await waitFor('serve ready', async () => {
    if (child.exitCode !== null) throw new Error(`serve exited (${child.exitCode}): ${err}`);
    return out.includes('regfs: serving');
  });
  return {
    child,
    stderr: () => err,
    stop: async (sig = 'SIGTERM') => {
      if (child.exitCode === null && child.signalCode === null) child.kill(sig);
      return exited;
    },
  };
}

/**
 * The #19 scenario on a kept mount at `mnt` whose big blob is `bigPath` and slow blob `slowPath`:
 * readers start, a second process takes over (an upgrade), that one is killed with -9, a third
 * takes over; the readers must see no error and 1 mount throughout; a plain stop then unmounts.
 */
async function handoverScenario(what: string, start: () => Promise<Proc>, mnt: string, bigPath: string, slowPath: string, cache: string): Promise<void> {
  const running: Proc[] = [];
  let readersProcess: ChildProcess | undefined;
  try {
    const a = await start();
    running.push(a);
    assert.match(a.stderr(), /mounting afresh: no descriptor kept for this mountpoint/);
    assert.equal(await mountsAt(mnt), 1);
    // The kernel keeps inode numbers across the switch: they must name the same files after it.
    const inodes = async (): Promise<number[]> => [(await stat(bigPath)).ino, (await stat(dirname(bigPath))).ino, (await stat(slowPath)).ino];
    const before = await inodes();
    const readers = await startReaders(dir.path, mnt, bigPath, digests[0]!.slice('sha256:'.length), slowPath, slow);
    readersProcess = readers.process;
    await new Promise((r) => setTimeout(r, 2000));

    // (a) An upgrade: the new process asks the old one to hand over, then serves the same mount.
    const gracefulFrom = Date.now();
    const aExit = new Promise((r) => a.child.once('exit', (code, sig) => r([code, sig])));
    const b = await start();
    running.push(b);
    assert.deepEqual(await aExit, [0, null]);
    assert.match(a.stderr(), /handed the mount over to the next process/);
    await waitFor('the resend', async () => /took over the live FUSE session/.test(b.stderr()), 5000);
    assert.equal(await mountsAt(mnt), 1);
    assert.deepEqual(await inodes(), before, 'inode numbers after the handover');
    await new Promise((r) => setTimeout(r, 2000));

    // (b) A crash: kill -9, and a restart takes the held descriptor.
    const crashFrom = Date.now();
    await b.stop('SIGKILL');
    assert.equal(await mountsAt(mnt), 1);
    const c = await start();
    running.push(c);
    await waitFor('the resend', async () => /took over the live FUSE session/.test(c.stderr()), 5000);
    await new Promise((r) => setTimeout(r, 2000));
    const crashTo = Date.now();
    assert.deepEqual(await inodes(), before, 'inode numbers after kill -9 and a restart');

    const m = await readers.stop();
    console.log(
      `${what}: sha256 passes ${m.passes}, slow reads ${m.slow_reads}, stats ${m.stats}; longest stall: upgrade ${longest(m.stalls, gracefulFrom, crashFrom)} ms, kill -9 + restart ${longest(m.stalls, crashFrom, crashTo)} ms`,
    );
    assert.deepEqual(m.errors, []);
    assert.equal(m.bad_passes, 0);
    assert.ok(m.passes >= 2, `only ${m.passes} sha256 passes`);
    assert.ok(m.slow_reads > 300, `only ${m.slow_reads} slow reads`);
    assert.equal(m.slow_bad, 0);
    assert.equal(await mountsAt(mnt), 1);

    // A plain stop unmounts, and the holder, holding nothing, exits.
    assert.deepEqual(await c.stop('SIGTERM'), [0, null]);
    assert.equal(await mountsAt(mnt), 0);
    await waitFor('the holder to exit', async () => new FdHolder(join(cache, 'fd-holder.sock')).ping() === undefined, 5000);
  } finally {
    readersProcess?.kill('SIGKILL');
    for (const r of running) await r.stop('SIGKILL');
    // Nothing may wait on a connection nobody serves: abort it, then unmount.
    const conn = (await readFile('/proc/self/mountinfo', 'utf8')).split('\n').find((l) => l.split(' ')[4] === mnt)?.split(' ')[2]?.split(':')[1];
    if (conn) await writeFile(`/sys/fs/fuse/connections/${conn}/abort`, '1').catch(() => undefined);
    await run('fusermount', ['-u', '-z', mnt]).catch(() => undefined);
    const holder = new FdHolder(join(cache, 'fd-holder.sock'));
    if (holder.ping() !== undefined) holder.delete(fdNameFor(mnt));
  }
}

test('regfs mount --keep-mounts: a new regfs mount takes the mount over (SIGUSR2 to the old one), then kill -9 and a restart; a sha256 loop over a 100 MiB blob, a reader holding a blob open and stat every 5 ms see no error, 1 mount throughout', async () => {
  const cache = join(dir.path, 'cache-mount');
  const mnt = await makeMountpoint(dir.path, 'mnt', mounts);
  const args = ['--cache-dir', cache, '--keep-mounts', '--log-level', 'info'];
  await handoverScenario('mount', () => startMount(ref, mnt, args), mnt, join(mnt, 'blobs', digests[0]!), join(mnt, 'blobs', digests[1]!), cache);
});

test('regfs serve with keepMounts: the same for the store mount; the image resolved before the handover keeps answering', async () => {
  const cache = join(dir.path, 'cache-serve');
  const store = await makeMountpoint(dir.path, 'store', mounts);
  const cfgPath = join(dir.path, 'serve.yaml');
  await writeFile(cfgPath, JSON.stringify({ store, cacheDir: cache, logLevel: 'info', keepMounts: true }));
  const image = join(store, reg.host, 'keep/raw/v1');
  await handoverScenario('serve', () => startServe(cfgPath), store, join(image, 'blobs', digests[0]!), join(image, 'blobs', digests[1]!), cache);
});

const alive = (pid: number): boolean => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

test('regfs ctl restart: the service starts the binary on disk, which takes the kept store mount over; the old one exits 0, readers see no error, 1 mount, same inode numbers; without keepMounts it refuses in one line', async () => {
  const cache = join(dir.path, 'cache-ctl');
  const store = await makeMountpoint(dir.path, 'store-ctl', mounts);
  const control = join(dir.path, 'ctl.sock');
  const cfgPath = join(dir.path, 'serve-ctl.yaml');
  await writeFile(cfgPath, JSON.stringify({ store, cacheDir: cache, control, logLevel: 'info', keepMounts: true }));
  const image = join(store, reg.host, 'keep/raw/v1');
  const bigPath = join(image, 'blobs', digests[0]!);
  const slowPath = join(image, 'blobs', digests[1]!);
  let next = 0;
  let readersProcess: ChildProcess | undefined;
  const a = await startServe(cfgPath);
  try {
    const before = [(await stat(bigPath)).ino, (await stat(image)).ino];
    const readers = await startReaders(dir.path, store, bigPath, digests[0]!.slice('sha256:'.length), slowPath, slow);
    readersProcess = readers.process;
    await new Promise((r) => setTimeout(r, 1500));
    const aExit = new Promise((r) => a.child.once('exit', (code, sig) => r([code, sig])));
    const { stdout } = await run(process.execPath, [CLI, 'ctl', 'restart', '--control', control]);
    const m = /^regfs restarted: pid (\d+) → pid (\d+); the mounts stayed\n$/.exec(stdout);
    assert.ok(m, `ctl restart printed ${JSON.stringify(stdout)}`);
    assert.equal(Number(m[1]), a.child.pid);
    next = Number(m[2]);
    assert.ok(alive(next));
    assert.deepEqual(await aExit, [0, null]);
    assert.match(a.stderr(), /handed the mount over to the next process/);
    // The successor logs to the same stderr as its parent did.
    await waitFor('the resend', async () => /took over the live FUSE session/.test(a.stderr()), 5000);
    await new Promise((r) => setTimeout(r, 1500));
    const seen = await readers.stop();
    assert.deepEqual(seen.errors, []);
    assert.equal(seen.bad_passes, 0);
    assert.equal(seen.slow_bad, 0);
    assert.ok(seen.slow_reads > 100, `only ${seen.slow_reads} slow reads`);
    assert.equal(await mountsAt(store), 1);
    assert.deepEqual([(await stat(bigPath)).ino, (await stat(image)).ino], before);
    const ls = JSON.parse((await run(process.execPath, [CLI, 'ctl', 'ls', '--control', control])).stdout) as { ref: string }[];
    assert.deepEqual(ls.map((i) => i.ref), [ref]);

    // The successor stops like any serve: SIGTERM unmounts.
    process.kill(next, 'SIGTERM');
    await waitFor('the successor to exit', async () => !alive(next), 10_000);
    assert.equal(await mountsAt(store), 0);
  } finally {
    readersProcess?.kill('SIGKILL');
    if (next && alive(next)) process.kill(next, 'SIGKILL');
    await a.stop('SIGKILL');
    await run('fusermount', ['-u', '-z', store]).catch(() => undefined);
    const holder = new FdHolder(join(cache, 'fd-holder.sock'));
    if (holder.ping() !== undefined) holder.delete(fdNameFor(store));
  }

  // Without keepMounts a restart would unmount: refused, one line naming the fix, nothing changes.
  const plainCfg = join(dir.path, 'serve-plain.yaml');
  const plainStore = await makeMountpoint(dir.path, 'store-plain', mounts);
  const plainControl = join(dir.path, 'ctl-plain.sock');
  await writeFile(plainCfg, JSON.stringify({ store: plainStore, cacheDir: join(dir.path, 'cache-plain'), control: plainControl, logLevel: 'info' }));
  const p = await startServe(plainCfg);
  try {
    const r = await run(process.execPath, [CLI, 'ctl', 'restart', '--control', plainControl]).then(
      () => assert.fail('ctl restart succeeded without keepMounts'),
      (e: { code: number; stderr: string }) => e,
    );
    assert.equal(r.code, 1);
    assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
    assert.match(r.stderr, /keepMounts: true/);
    assert.equal(p.child.exitCode, null);
    assert.equal(await mountsAt(plainStore), 1);
  } finally {
    assert.deepEqual(await p.stop('SIGTERM'), [0, null]);
  }
});
