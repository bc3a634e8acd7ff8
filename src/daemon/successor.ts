import { spawn } from 'node:child_process';
import { RegfsError } from '../lib/errors.js';
import type { Logger } from '../lib/logger.js';

export interface SuccessorPolicy {
  keepMounts: boolean;
  /** Set when systemd runs us (NOTIFY_SOCKET): systemd, not we, must start the next process. */
  underSystemd: boolean;
}

/**
 * `regfs ctl restart` (#19): an upgrade is a restart with the binary now on disk. The next
 * process is this one's command line run again (argv[1] is the path of main.js, so a replaced
 * install is what starts); it asks us to hand over (SIGUSR2, fs/kept-mount.ts) and takes the
 * mount's /dev/fuse descriptor, so readers never see the switch. If it dies before it takes over,
 * we never got SIGUSR2 and keep serving.
 */
export function startSuccessor(policy: SuccessorPolicy, logger: Logger): { previous: number; next: number } {
  if (policy.underSystemd) {
    // A child of the main process dies with the unit's cgroup when we exit (KillMode=), and
    // systemd 252 keeps its fd store only across automatic restarts (docs/takeover.md).
    throw new RegfsError('ERR_CONTROL', 'regfs runs under systemd: a successor started by it would die with the unit; upgrade with `systemctl restart` (on systemd < 254 that unmounts: docs/takeover.md)');
  }
  if (!policy.keepMounts) {
    throw new RegfsError('ERR_CONTROL', 'restart keeps the mounts only with keepMounts: true; set it in the config and restart once by hand (stop, start), then `regfs ctl restart` upgrades without unmounting');
  }
  const child = spawn(process.execPath, [...process.execArgv, ...process.argv.slice(1)], {
    cwd: process.cwd(), // env: ours, by default
    detached: true,
    // Its log goes where ours goes; it outlives us, so it must not be in our process group.
    stdio: ['ignore', 'inherit', 'inherit'],
  });
  if (child.pid === undefined) throw new RegfsError('ERR_CONTROL', `cannot start ${process.argv[1] ?? 'regfs'} again`);
  child.once('exit', (code, signal) => logger.error({ pid: child.pid, code, signal }, 'the next regfs exited before taking over; this one keeps serving'));
  child.unref();
  logger.info({ next: child.pid }, 'restart: started the next regfs; it takes the mount over');
  return { previous: process.pid, next: child.pid };
}
