import { sleep } from './abort.js';

/**
 * Keeps background transfers at or under `rate` bytes per second (0 = no cap): after handing out
 * each piece of work, `after(bytes)` waits until the bytes handed out so far are within the rate
 * since the start. Shared by `--prefetch all` and access-profile replay (#15).
 */
export class RatePacer {
  private readonly started = Date.now();
  private sent = 0;

  constructor(private readonly rate: number) {}

  /** Counts `bytes` as sent and waits as long as the cap asks; resolves early (no throw) on abort. */
  async after(bytes: number, signal?: AbortSignal): Promise<void> {
    this.sent += bytes;
    if (this.rate <= 0) return;
    const ahead = this.sent / this.rate - (Date.now() - this.started) / 1000;
    if (ahead > 0) await sleep(ahead * 1000, signal).catch(() => undefined);
  }
}
