/** Opaque keys → verified bytes. What blob/ needs from a cache, nothing more. */
export interface ChunkStore {
  /** The bytes stored under key, verified; undefined when absent or corrupt (a miss). */
  get(key: string): Promise<Buffer | undefined>;
  /** Stores bytes; never throws: a cache that cannot write degrades to a pass-through. */
  put(key: string, data: Uint8Array): Promise<void>;
  has(key: string): boolean;
  delete(key: string): Promise<void>;
  keys(): string[];
  readonly counters: CacheCounters;
  /** Bytes accounted on disk. */
  readonly size: number;
  close(): Promise<void>;
}

export interface CacheCounters {
  hits: number;
  misses: number;
  evictions: number;
  corruptions: number;
  writeErrors: number;
  bytesWritten: number;
}

/** Keys are file names: this alphabet keeps them safe on any filesystem. */
export const KEY_RE = /^[A-Za-z0-9._-]{1,200}$/;
