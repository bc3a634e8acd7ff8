import { execFile } from 'node:child_process';
import { closeSync } from 'node:fs';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { RegfsError } from '../lib/errors.js';
import type { Logger } from '../lib/logger.js';
import { pidAlive } from '../lib/pid-alive.js';
import { fdNameFor, type FdKeeper } from './fd-keeper.js';
import type { ReadOnlyFilesystem } from './filesystem.js';
import type { FuseMount } from './fuse-adapter.js';
import { mountSession, takeOverSession, type FuseSession, type SessionOptions } from './fuse-session.js';

export interface KeptMountOptions extends SessionOptions {
  allowOther: boolean;
  /** Where the /dev/fuse descriptor outlives this process (systemd's fd store, regfs-fd-holder). */
  keeper: FdKeeper;
  /** Where the session's node log and the serving pid live (kept across restarts). */
  stateDir: string;
  logger: Logger;
  /** Checks the mountpoint before a fresh mount (the daemon's usual checks). */
  prepare?: () => Promise<void>;
}

/** A mount that outlives its process: `handOver` leaves it to the next one instead of unmounting. */
export interface KeptMount extends FuseMount {
  /** True when this process took over a live mount; false when it mounted afresh. */
  readonly tookOver: boolean;
  /** Stops taking requests and lets in-flight reads finish (1 s at most); the mount stays. */
  handOver(): Promise<void>;
}

/** True when a FUSE mount of regfs sits at `mountpoint` (from mountinfo: never touches the mount). */
export async function regfsMountAt(mountpoint: string): Promise<boolean> {
  const lines = (await readFile('/proc/self/mountinfo', 'utf8')).split('\n');
  return lines.some((l) => {
    const f = l.split(' ');
    return f[4] === mountpoint && f[f.indexOf('-') + 1] === 'fuse.regfs';
  });
}

/** The state files of the kept mount at `mountpoint`. */
function stateFiles(stateDir: string, mountpoint: string): { name: string; nodeLog: string; pidFile: string } {
  const name = fdNameFor(mountpoint);
  return { name, nodeLog: join(stateDir, `${name}.nodes`), pidFile: join(stateDir, `${name}.pid`) };
}

/**
 * Asks the process serving the kept mount at `mountpoint` (its pid file), if one still runs, to
 * hand over (SIGUSR2) and waits until it has exited: for a successor that cannot run beside it
 * (one owner per cache dir). Until the successor serves, the kernel queues what readers ask.
 */
export async function retirePredecessor(stateDir: string, mountpoint: string, logger: Logger, timeoutMs = 30_000): Promise<void> {
  const previous = Number(await readFile(stateFiles(stateDir, mountpoint).pidFile, 'utf8').catch(() => '0'));
  if (!(previous > 0 && previous !== process.pid && pidAlive(previous))) return;
  logger.info({ mountpoint, previous }, 'asking the running regfs to hand its mount over');
  process.kill(previous, 'SIGUSR2');
  const until = Date.now() + timeoutMs;
  while (pidAlive(previous)) {
    if (Date.now() > until) throw new RegfsError('ERR_TAKEOVER', `regfs pid ${previous} serving ${mountpoint} did not hand over within ${timeoutMs / 1000} s (SIGUSR2); stop it first`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/**
 * Mounts `fs` at `mountpoint` so that it survives this process (#19): takes over the live
 * session the keeper holds for the mountpoint, or mounts afresh and hands the keeper its
 * descriptor. A takeover asks the previous process (its pid file) to hand over with SIGUSR2,
 * waits for it to be gone, then asks the kernel to resend what it left unanswered. Why it could not take over is logged in
 * one line.
 */
export async function openKeptMount(fs: ReadOnlyFilesystem, mountpoint: string, opts: KeptMountOptions): Promise<KeptMount> {
  const log = opts.logger;
  const { name, nodeLog, pidFile } = stateFiles(opts.stateDir, mountpoint);
  await mkdir(opts.stateDir, { recursive: true, mode: 0o700 });
  const fds = opts.keeper.get(name);
  let session: FuseSession | undefined;
  let tookOver = false;
  if (fds && fds.length > 0 && (await regfsMountAt(mountpoint))) {
    for (const extra of fds.slice(1)) closeSync(extra);
    const previous = Number(await readFile(pidFile, 'utf8').catch(() => '0'));
    session = await takeOverSession(fds[0]!, fs, { ...opts, nodeLog });
    tookOver = true;
    await writeFile(pidFile, String(process.pid));
    // A previous process still serving is asked to hand over (SIGUSR2: stop taking requests,
    // finish what it has, exit without unmounting). Resend only once it is gone, or requests it
    // read in its last moments stay unanswered.
    const handover = previous > 0 && previous !== process.pid && pidAlive(previous);
    if (handover) process.kill(previous, 'SIGUSR2');
    void (async () => {
      while (handover && pidAlive(previous)) await new Promise((r) => setTimeout(r, 10));
      const ok = session!.resend();
      log.info({ mountpoint, previous, handover, resend: ok }, 'took over the live FUSE session');
    })();
  } else {
    let why = 'no descriptor kept for this mountpoint (first start, or the keeper was restarted)';
    if (fds) {
      for (const fd of fds) closeSync(fd);
      opts.keeper.delete(name);
      why = 'the kept descriptor belongs to a mount that is gone';
    }
    log.info({ mountpoint, why }, `mounting afresh: ${why}`);
    await opts.prepare?.();
    await rm(nodeLog, { force: true });
    session = mountSession(fs, mountpoint, { ...opts, nodeLog });
    opts.keeper.put(name, [session.fd]);
    await writeFile(pidFile, String(process.pid));
  }
  const s = session;
  return {
    mountpoint,
    tookOver,
    get inFlight() {
      return s.inFlight;
    },
    sessionFd: s.fd,
    abortReads: () => s.abortReads(),
    handOver: async () => {
      s.stop();
      const until = Date.now() + 1000;
      while (s.inFlight > 0 && Date.now() < until) await new Promise((r) => setTimeout(r, 5));
    },
    unmount: async () => {
      s.stop();
      await new Promise<void>((resolve) => execFile('fusermount', ['-u', '-z', mountpoint], () => resolve()));
      opts.keeper.delete(name);
      closeSync(s.fd);
      await rm(nodeLog, { force: true });
      await rm(pidFile, { force: true });
    },
  };
}
