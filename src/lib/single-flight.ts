/**
 * "Share an in-flight promise, forget it when it fails": the one home of the pattern that the
 * first gate, layer indexes, TOCs, span inflation and redirect resolution all need. A failure is
 * never remembered, so the next caller tries again; a success is kept only by `once`.
 */

/** Calls `fn` at most once at a time and once on success; a rejection is forgotten. */
export function once<V>(fn: () => Promise<V>): () => Promise<V> {
  let p: Promise<V> | undefined;
  return () => {
    if (!p) {
      const mine = fn();
      p = mine;
      mine.catch(() => {
        if (p === mine) p = undefined;
      });
    }
    return p;
  };
}

/**
 * Concurrent calls for one key share one promise; the key is forgotten as soon as it settles
 * (success or failure), so nothing is cached beyond the flight itself.
 */
export class SingleFlight<K, V> {
  private readonly flights = new Map<K, Promise<V>>();

  run(key: K, fn: () => Promise<V>): Promise<V> {
    const existing = this.flights.get(key);
    if (existing) return existing;
    const p = fn();
    this.flights.set(key, p);
    const forget = (): void => {
      if (this.flights.get(key) === p) this.flights.delete(key);
    };
    p.then(forget, forget);
    return p;
  }

  /** Flights under way. */
  get size(): number {
    return this.flights.size;
  }
}

/** Like `SingleFlight`, but a success stays cached per key (until `forget`); failures are not. */
export class OnceMap<K, V> {
  private readonly values = new Map<K, Promise<V>>();

  get(key: K, fn: () => Promise<V>): Promise<V> {
    const existing = this.values.get(key);
    if (existing) return existing;
    const p = fn();
    this.values.set(key, p);
    p.catch(() => {
      if (this.values.get(key) === p) this.values.delete(key);
    });
    return p;
  }

  forget(key: K): void {
    this.values.delete(key);
  }
}
