/** What the block store counts (the daemon exports these as metrics), and the key alphabet. */
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
