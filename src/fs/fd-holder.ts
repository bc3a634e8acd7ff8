import { spawn } from 'node:child_process';
import { closeSync } from 'node:fs';
import { RegfsError } from '../lib/errors.js';
import { nativeFile } from '../lib/native.js';
import type { FdKeeper } from './fd-keeper.js';
import { fdPass } from './fd-pass.js';

/**
 * Client of regfs-fd-holder (native/fuse/fd-holder.c), the small process that keeps /dev/fuse
 * descriptors open while regfs restarts or after it was killed, outside systemd: a FUSE
 * connection lives while one descriptor of it is open, and with it every reader of the mount.
 * The holder exits by itself once it holds nothing.
 */
export class FdHolder implements FdKeeper {
  constructor(readonly socketPath: string) {}

  /** Starts a holder on the socket unless one answers there already. */
  async ensureRunning(): Promise<void> {
    if (this.ping() !== undefined) return;
    const child = spawn(nativeFile('regfs-fd-holder'), [this.socketPath], { detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
    let err = '';
    child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
    await new Promise<void>((resolve, reject) => {
      const fail = (why: string): void => reject(new RegfsError('ERR_TAKEOVER', `regfs-fd-holder on ${this.socketPath}: ${why}`));
      child.once('error', (e) => fail(e.message));
      child.once('exit', (code) => (this.ping() !== undefined ? resolve() : fail(`exited (${code}) ${err.trim()}`)));
      child.stdout!.once('data', () => resolve());
    });
    // It runs on its own (its own session, no pipes kept): regfs may exit or die under it.
    child.stdout!.destroy();
    child.stderr!.destroy();
    child.unref();
  }

  /** Number of names held, or undefined when no holder answers. */
  ping(): number | undefined {
    const r = fdPass().request(this.socketPath, Buffer.from('PING'), []);
    if (r.rc !== 0) return undefined;
    const m = /^OK (\d+)$/.exec(r.message.toString());
    return m ? Number(m[1]) : undefined;
  }

  /** Hands the holder copies of `fds` under `name` (the caller keeps its own). */
  put(name: string, fds: number[]): void {
    this.expectOk(`PUT ${name}`, fds);
  }

  /** Copies of the descriptors held under `name` (the caller must close them), or undefined. */
  get(name: string): number[] | undefined {
    const r = fdPass().request(this.socketPath, Buffer.from(`GET ${name}`), []);
    if (r.rc !== 0) return undefined;
    if (r.message.toString() !== 'OK') {
      for (const fd of r.fds) closeSync(fd);
      return undefined;
    }
    return r.fds;
  }

  /** Closes what the holder keeps under `name`; a holder left with nothing exits. */
  delete(name: string): void {
    this.expectOk(`DEL ${name}`, []);
  }

  private expectOk(request: string, fds: number[]): void {
    const r = fdPass().request(this.socketPath, Buffer.from(request), fds);
    for (const fd of r.fds) closeSync(fd);
    const answer = r.message.toString();
    if (r.rc !== 0 || answer !== 'OK') {
      throw new RegfsError('ERR_TAKEOVER', `regfs-fd-holder on ${this.socketPath}: ${request.split(' ')[0]} failed: ${r.rc !== 0 ? `errno ${-r.rc}` : answer}`);
    }
  }
}
