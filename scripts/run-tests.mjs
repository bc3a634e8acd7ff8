#!/usr/bin/env node
// Runs test files with `node --test`, then fails the run if it left a regfs process or a mount of
// its own behind (#13: a `regfs mount … --daemon-child` once outlived the suite).
//
// Other regfs processes and mounts may exist on the machine (other checkouts, a real service), so
// only this run's are counted: processes that carry REGFS_TEST_RUN=<id> in their environment
// (every process the tests start inherits it) and run this checkout's dist/cli/main.js, and mounts
// under this run's TMPDIR (every test temp dir is made there, test/helpers/tmp.ts).
//
// Usage: node scripts/run-tests.mjs [test files…]   (default: every dist-test/**/*.test.js)
import { spawn, execFile } from 'node:child_process';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { join, relative, resolve } from 'node:path';
import { promisify } from 'node:util';

const ROOT = resolve(new URL('..', import.meta.url).pathname);
const CLI = join(ROOT, 'dist/cli/main.js');
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function* walk(dir) {
  for (const e of await readdir(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) yield* walk(p);
    else if (p.endsWith('.test.js')) yield p;
  }
}

async function testFiles(args) {
  if (args.length) return args;
  const out = [];
  for await (const f of walk(join(ROOT, 'dist-test'))) out.push(relative(process.cwd(), f));
  return out.sort();
}

/** This run's regfs processes: pid and command line. */
async function leftoverProcesses(id) {
  const out = [];
  for (const p of await readdir('/proc')) {
    if (!/^\d+$/.test(p) || Number(p) === process.pid) continue;
    const environ = await readFile(`/proc/${p}/environ`, 'latin1').catch(() => '');
    if (!environ.split('\0').includes(`REGFS_TEST_RUN=${id}`)) continue;
    const argv = (await readFile(`/proc/${p}/cmdline`, 'latin1').catch(() => '')).split('\0').filter(Boolean);
    if (argv.some((a) => resolve(a) === CLI)) out.push({ pid: Number(p), cmd: argv.join(' ') });
  }
  return out;
}

/** Mounts under this run's temp dir (/proc/self/mountinfo, octal escapes decoded). */
async function leftoverMounts(runDir) {
  const info = await readFile('/proc/self/mountinfo', 'utf8');
  return info
    .split('\n')
    .map((l) => l.split(' '))
    .filter((f) => f.length > 4)
    .map((f) => ({ path: f[4].replace(/\\(\d{3})/g, (_m, o) => String.fromCharCode(parseInt(o, 8))), type: f[f.indexOf('-') + 1] }))
    .filter((m) => m.path === runDir || m.path.startsWith(`${runDir}/`));
}

const files = await testFiles(process.argv.slice(2));
const runDir = await mkdtemp('/tmp/regfs-test-run-');
const id = runDir.slice('/tmp/regfs-test-run-'.length);
const env = { ...process.env, TMPDIR: runDir, REGFS_TEST_RUN: id };
// Set when this runner is itself started from a test (test-runner.test.ts): `node --test` would
// then skip the files.
delete env.NODE_TEST_CONTEXT;
const child = spawn(process.execPath, ['--test', '--test-concurrency=1', '--test-timeout=900000', ...files], { stdio: 'inherit', env });
for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, () => child.kill(sig));
const code = await new Promise((r) => child.once('exit', (c, s) => r(c ?? (s ? 1 : 0))));

// A daemon exits within 2 s of its unmount (lifecycle.test.ts): give stragglers 3 s.
let procs = [];
let mounts = [];
for (const until = Date.now() + 3000; ; ) {
  procs = await leftoverProcesses(id);
  mounts = await leftoverMounts(runDir);
  if ((procs.length === 0 && mounts.length === 0) || Date.now() > until) break;
  await sleep(200);
}
if (procs.length || mounts.length) {
  console.error(`\ntest run left behind ${procs.length} regfs process(es) and ${mounts.length} mount(s):`);
  for (const p of procs) console.error(`  pid ${p.pid}: ${p.cmd}`);
  for (const m of mounts) console.error(`  mount ${m.type} at ${m.path}`);
  // Clean up what this run made, so the machine is usable, and fail.
  for (const p of procs) {
    try {
      process.kill(p.pid, 'SIGKILL');
    } catch {
      /* gone meanwhile */
    }
  }
  const run = promisify(execFile);
  for (const m of mounts.reverse()) await run('umount', ['-l', m.path]).catch(() => {});
}
await rm(runDir, { recursive: true, force: true }).catch(() => {});
process.exit(code !== 0 ? code : procs.length || mounts.length ? 1 : 0);
