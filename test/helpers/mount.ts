import { type ChildProcess, spawn } from 'node:child_process';
import { join } from 'node:path';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';

const run = promisify(execFile);
export const CLI = join(import.meta.dirname, '../../../dist/cli/main.js');

export interface RunningMount {
  child: ChildProcess;
  readyLine: string;
  stderr(): string;
  /** Sends a signal and waits for the exit; resolves with [code, signal]. */
  stop(sig?: NodeJS.Signals): Promise<[number | null, NodeJS.Signals | null]>;
}

/** Runs `regfs mount` in the foreground and waits for its ready line. */
export async function startMount(ref: string, mountpoint: string, extra: string[], timeoutMs = 30_000): Promise<RunningMount> {
  // Run as users do (`regfs mount`): the shebang carries the daemon's node flags.
  const child = spawn(CLI, ['mount', ref, mountpoint, ...extra], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
  const exited = new Promise<[number | null, NodeJS.Signals | null]>((r) => child.once('exit', (c, s) => r([c, s])));
  const readyLine = await new Promise<string>((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`mount not ready in ${timeoutMs} ms; stderr: ${err}`)), timeoutMs);
    child.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      const line = out.split('\n').find((l) => l.startsWith('regfs: mounted'));
      if (line) {
        clearTimeout(t);
        resolve(line);
      }
    });
    void exited.then(([c, s]) => {
      clearTimeout(t);
      reject(new Error(`mount exited (${s ?? c}) before ready; stderr: ${err}`));
    });
  });
  return {
    child,
    readyLine,
    stderr: () => err,
    stop: async (sig = 'SIGTERM') => {
      if (child.exitCode === null && child.signalCode === null) child.kill(sig);
      return exited;
    },
  };
}

/** Best effort: leave no mount behind whatever a test did. */
export async function forceUnmount(mountpoint: string): Promise<void> {
  await run('fusermount', ['-u', '-z', mountpoint]).catch(() => {});
}

export async function isMounted(mountpoint: string): Promise<boolean> {
  const { stdout } = await run('cat', ['/proc/self/mountinfo']);
  return stdout.split('\n').some((l) => l.split(' ')[4] === mountpoint);
}

/** Parses Prometheus text into name{labels} → value; throws on a line that is not the format. */
export function parsePrometheus(text: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) {
      if (line.startsWith('#') && !/^# (HELP|TYPE) [a-zA-Z_:][a-zA-Z0-9_:]* /.test(line)) throw new Error(`bad comment line: ${line}`);
      continue;
    }
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*(?:\{[^}]*\})?) (-?[0-9.eE+-]+|NaN|\+Inf|-Inf)$/.exec(line);
    if (!m) throw new Error(`not Prometheus text: ${line}`);
    out.set(m[1]!, Number(m[2]));
  }
  return out;
}

/** An empty directory to mount on, remembered in `list` so the test can unmount it at the end. */
export async function makeMountpoint(base: string, name: string, list: string[]): Promise<string> {
  const { mkdir } = await import('node:fs/promises');
  const p = join(base, name);
  await mkdir(p, { recursive: true });
  list.push(p);
  return p;
}
