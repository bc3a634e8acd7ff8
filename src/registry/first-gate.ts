/**
 * nydus's `First` (storage/src/backend/registry.rs): until one request to a registry/repository
 * has completed, exactly one goes out and the rest wait for it, so a cold mount with 64 readers
 * fetches one token instead of 64. On failure the next waiter becomes the first.
 */
export class FirstGate {
  private done = false;
  private inFlight: Promise<void> | undefined;

  get completed(): boolean {
    return this.done;
  }

  async run<T>(fn: () => Promise<T>): Promise<T> {
    while (!this.done) {
      if (this.inFlight === undefined) {
        let settle!: () => void;
        this.inFlight = new Promise<void>((r) => (settle = r));
        try {
          const value = await fn();
          this.done = true;
          return value;
        } finally {
          // Cleared before waking waiters so that, after a failure, the first to wake takes over.
          this.inFlight = undefined;
          settle();
        }
      }
      await this.inFlight;
    }
    return fn();
  }
}

/** One gate per key (`host/repository`), created on first use. */
export class FirstGates {
  private readonly gates = new Map<string, FirstGate>();
  get(key: string): FirstGate {
    let g = this.gates.get(key);
    if (!g) {
      g = new FirstGate();
      this.gates.set(key, g);
    }
    return g;
  }
}
