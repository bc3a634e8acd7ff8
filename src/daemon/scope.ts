import type { Logger } from '../lib/logger.js';

/** Why a daemon stops: a signal, its filesystem went away, or a part of it failed. */
export type StopReason =
  | { kind: 'signal'; signal: string }
  | { kind: 'unmounted'; mountpoint: string }
  | { kind: 'failed'; error: Error };

/**
 * The lifetime of one daemon (or one CLI command's services): what was acquired is released in
 * reverse order, once, on every exit path — the normal stop, an error during start-up, a signal.
 *
 * Usage: `const x = await scope.use('what', open, close)` (or `scope.defer('what', close)` right
 * after acquiring something by hand); `scope.stop(reason)` from anywhere ends the daemon's wait
 * (`await scope.stopped`); `await scope.close()` runs the releases (idempotent). A release that
 * fails is logged and the others still run. Something registered after `close()` began is released
 * at once: a start-up step that finished late must not leak.
 */
export class Scope {
  readonly stopped: Promise<StopReason>;
  private readonly releases: { name: string; release: () => Promise<void> | void }[] = [];
  private resolveStop!: (r: StopReason) => void;
  private stopReason: StopReason | undefined;
  private closing: Promise<void> | undefined;

  constructor(readonly logger: Logger) {
    this.stopped = new Promise((r) => (this.resolveStop = r));
  }

  /** The reason given to the first `stop()`, if any. */
  get reason(): StopReason | undefined {
    return this.stopReason;
  }

  /** Acquires a resource and registers its release. */
  async use<T>(name: string, acquire: () => Promise<T> | T, release: (v: T) => Promise<void> | void): Promise<T> {
    const v = await acquire();
    this.defer(name, () => release(v));
    return v;
  }

  /** Registers the release of something just acquired. */
  defer(name: string, release: () => Promise<void> | void): void {
    if (this.closing) {
      void this.run({ name, release });
      return;
    }
    this.releases.push({ name, release });
  }

  /** Asks the daemon to stop; the first reason wins. */
  stop(reason: StopReason): void {
    if (this.stopReason) return;
    this.stopReason = reason;
    this.resolveStop(reason);
  }

  /** Releases everything in reverse order of acquisition; later calls wait for the first. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      for (const r of this.releases.splice(0).reverse()) await this.run(r);
    })();
    return this.closing;
  }

  private async run(r: { name: string; release: () => Promise<void> | void }): Promise<void> {
    try {
      await r.release();
    } catch (e) {
      this.logger.warn({ what: r.name, err: (e as Error).message }, 'release failed');
    }
  }
}

/** Runs `fn` inside a scope that is closed however `fn` ends. */
export async function withScope<T>(logger: Logger, fn: (scope: Scope) => Promise<T>): Promise<T> {
  const scope = new Scope(logger);
  try {
    return await fn(scope);
  } finally {
    await scope.close();
  }
}
