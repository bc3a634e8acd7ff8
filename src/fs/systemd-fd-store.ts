import { closeSync } from 'node:fs';
import { RegfsError } from '../lib/errors.js';
import type { FdKeeper } from './fd-keeper.js';
import { fdPass } from './fd-pass.js';

/** sd_listen_fds(3): passed descriptors start at 3. */
const SD_LISTEN_FDS_START = 3;

/**
 * systemd's file descriptor store (sd_notify(3) FDSTORE=1, FDNAME=, FDSTOREREMOVE=1; the unit
 * needs FileDescriptorStoreMax=): systemd keeps the descriptors while the service restarts or
 * after it crashed, and hands them back in LISTEN_FDS/LISTEN_FDNAMES to the next instance.
 */
export class SystemdFdStore implements FdKeeper {
  constructor(
    private readonly notifySocket: string,
    /** What this process inherited, from `inheritedFds`. */
    private readonly inherited: Map<string, number[]>,
  ) {}

  put(name: string, fds: number[]): void {
    const rc = fdPass().sendFds(this.notifySocket, Buffer.from(`FDSTORE=1\nFDNAME=${name}`), fds);
    if (rc !== 0) throw new RegfsError('ERR_TAKEOVER', `systemd fd store: FDSTORE=1 for ${name} failed: errno ${-rc}`);
  }

  get(name: string): number[] | undefined {
    const fds = this.inherited.get(name);
    this.inherited.delete(name);
    return fds;
  }

  delete(name: string): void {
    for (const fd of this.inherited.get(name) ?? []) closeSync(fd);
    this.inherited.delete(name);
    fdPass().sendFds(this.notifySocket, Buffer.from(`FDSTOREREMOVE=1\nFDNAME=${name}`), []);
  }
}

/**
 * The descriptors systemd passed to this process, by name (sd_listen_fds_with_names(3)):
 * LISTEN_PID must be ours, LISTEN_FDS counts them from fd 3, LISTEN_FDNAMES names them in order
 * (colon-separated; one name may come several times). Values come from config/, the one reader
 * of the environment.
 */
export function inheritedFds(env: { listenPid?: string; listenFds?: string; listenFdNames?: string }, pid: number): Map<string, number[]> {
  const out = new Map<string, number[]>();
  const count = Number(env.listenFds ?? '0');
  if (env.listenPid !== String(pid) || !Number.isInteger(count) || count <= 0) return out;
  const names = (env.listenFdNames ?? '').split(':');
  for (let i = 0; i < count; i++) {
    const name = names[i] || 'unknown';
    out.set(name, [...(out.get(name) ?? []), SD_LISTEN_FDS_START + i]);
  }
  return out;
}
