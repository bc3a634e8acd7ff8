/**
 * Counting semaphore with two classes of waiters: urgent ones (a reader is blocked) are served
 * before background ones (read-ahead), and a background waiter can be promoted when a reader
 * comes to depend on it. FIFO within each class.
 */
export class Semaphore {
  private active = 0;
  private readonly urgent: (() => void)[] = [];
  private readonly background: (() => void)[] = [];

  constructor(private readonly limit: number) {}

  /** Resolves with a release function; `promote` moves a waiting background request ahead. */
  acquire(urgent = true): { ready: Promise<() => void>; promote: () => void } {
    let wake!: () => void;
    const ready = new Promise<() => void>((resolve) => {
      wake = () => {
        let released = false;
        resolve(() => {
          if (released) return;
          released = true;
          const next = this.urgent.shift() ?? this.background.shift();
          if (next) next();
          else this.active--;
        });
      };
    });
    if (this.active < this.limit) {
      this.active++;
      wake();
      return { ready, promote: () => {} };
    }
    (urgent ? this.urgent : this.background).push(wake);
    return {
      ready,
      promote: () => {
        const i = this.background.indexOf(wake);
        if (i >= 0) {
          this.background.splice(i, 1);
          this.urgent.push(wake);
        }
      },
    };
  }

  async run<T>(fn: () => Promise<T>, urgent = true): Promise<T> {
    const release = await this.acquire(urgent).ready;
    try {
      return await fn();
    } finally {
      release();
    }
  }

  get inUse(): number {
    return this.active;
  }
}
