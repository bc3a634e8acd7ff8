import type { LayerDeps, LayerDescriptor } from '../layer.js';

/**
 * What formats look at to decide whether a layer is theirs, read at most once per layer however
 * many formats ask: the blob's last bytes (footers) and the index this cache stored earlier.
 */
export interface LayerProbe {
  /** The last `n` bytes of the blob (fewer when the blob is smaller). */
  tail(n: number): Promise<Buffer>;
  /** The stored index under `key`, or undefined (a load error counts as absent: it is rebuilt). */
  storedIndex(key: string): Promise<Buffer | undefined>;
}

export function layerProbe(desc: LayerDescriptor, deps: LayerDeps): LayerProbe {
  const tails = new Map<number, Promise<Buffer>>();
  const indexes = new Map<string, Promise<Buffer | undefined>>();
  return {
    tail(n) {
      let p = tails.get(n);
      if (!p) {
        p = (async () => {
          const b = Buffer.alloc(Math.min(n, desc.size));
          const got = await deps.blobs.readAt(desc.digest, desc.size - b.length, b);
          return b.subarray(0, got);
        })();
        tails.set(n, p);
      }
      return p;
    },
    storedIndex(key) {
      let p = indexes.get(key);
      if (!p) {
        p = deps.indexes.load(key).catch(() => undefined);
        indexes.set(key, p);
      }
      return p;
    },
  };
}
