import { Worker } from 'node:worker_threads';
import type { IoRequest, IoResponse } from './io-worker.js';

type Job = { resolve: (r: IoResponse) => void };
type Body<T> = T extends unknown ? Omit<T, 'id'> : never;

/**
 * A small pool of io-worker threads, started on first use and unref'd (they never keep the
 * process alive). Jobs go to the worker with the fewest outstanding.
 */
export class IoWorkers {
  private readonly workers: { w: Worker; jobs: Map<number, Job> }[] = [];
  private seq = 0;

  constructor(private readonly size: number) {}

  /** crc32 of each block of `length` bytes at `position` of the open file `fd`. */
  async crc(fd: number, position: number, length: number, blockSize: number): Promise<Uint32Array> {
    return (await this.call({ op: 'crc', fd, position, length, blockSize })).crcs!;
  }

  /** Digest (hex) of the concatenated file ranges. */
  async hash(algo: string, pieces: { path: string; position: number; length: number }[]): Promise<string> {
    return (await this.call({ op: 'hash', algo, pieces })).hex!;
  }

  async close(): Promise<void> {
    const ws = this.workers.splice(0);
    await Promise.all(ws.map((x) => x.w.terminate()));
  }

  private pick(): { w: Worker; jobs: Map<number, Job> } {
    if (this.workers.length < this.size) {
      const w = new Worker(new URL('./io-worker.js', import.meta.url));
      w.unref();
      const slot = { w, jobs: new Map<number, Job>() };
      w.on('message', (res: IoResponse) => {
        const job = slot.jobs.get(res.id);
        slot.jobs.delete(res.id);
        if (slot.jobs.size === 0) w.unref();
        job?.resolve(res);
      });
      w.on('error', (e) => {
        for (const j of slot.jobs.values()) j.resolve({ id: -1, error: { message: e.message } });
        slot.jobs.clear();
        const i = this.workers.indexOf(slot);
        if (i >= 0) this.workers.splice(i, 1);
      });
      this.workers.push(slot);
      return slot;
    }
    return this.workers.reduce((a, b) => (b.jobs.size < a.jobs.size ? b : a));
  }

  private async call(body: Body<IoRequest>): Promise<IoResponse> {
    const slot = this.pick();
    const id = this.seq++;
    // Referenced while it has work: a pending cache write must finish before a clean exit.
    if (slot.jobs.size === 0) slot.w.ref();
    const res = await new Promise<IoResponse>((resolve) => {
      slot.jobs.set(id, { resolve });
      slot.w.postMessage({ ...body, id });
    });
    if (res.error) throw Object.assign(new Error(res.error.message), { code: res.error.code });
    return res;
  }
}
