import type { Digest } from '../lib/digest.js';
import { Semaphore } from '../lib/semaphore.js';

/** A place in line for one range request; `promote` moves it ahead of read-ahead. */
export interface SlotTicket {
  promote(): void;
  /** Resolves with the release function once both a blob slot and a global slot are held. */
  ready: Promise<() => void>;
}

/**
 * How many range requests run at once: per blob (a registry or CDN serves one object from a
 * bounded number of connections) and overall. Both are waited for with a promotable ticket:
 * while a read-ahead request waits, a reader that comes to need its bytes moves it to the front.
 */
export class FetchSlots {
  private readonly global: Semaphore;
  private readonly perBlob = new Map<string, { sem: Semaphore; users: number }>();

  constructor(
    globalConcurrency: number,
    private readonly perBlobConcurrency: number,
  ) {
    this.global = new Semaphore(globalConcurrency);
  }

  acquire(digest: Digest, urgent: boolean): SlotTicket {
    let blob = this.perBlob.get(digest);
    if (!blob) this.perBlob.set(digest, (blob = { sem: new Semaphore(this.perBlobConcurrency), users: 0 }));
    blob.users++;
    const b = blob;
    let promoted = urgent;
    let ticket = b.sem.acquire(urgent);
    const done = (): void => {
      if (--b.users === 0 && this.perBlob.get(digest) === b) this.perBlob.delete(digest);
    };
    const ready = (async () => {
      let releaseBlob: (() => void) | undefined;
      try {
        releaseBlob = await ticket.ready;
        ticket = this.global.acquire(promoted);
        const releaseGlobal = await ticket.ready;
        return () => {
          releaseGlobal();
          releaseBlob!();
          done();
        };
      } catch (e) {
        releaseBlob?.();
        done();
        throw e;
      }
    })();
    return {
      ready,
      promote: () => {
        promoted = true;
        ticket.promote();
      },
    };
  }
}
