import type { Digest } from './digest.js';

/**
 * The seam between fetching and everything above it: "read bytes of blob D at offset O".
 * Implemented by the registry backend (straight to HTTP) and by the chunk reader (through the
 * disk cache); fs/ and image/ see only this.
 */
export interface BlobReader {
  /** Size of the blob in bytes. */
  size(digest: Digest, signal?: AbortSignal): Promise<number>;
  /**
   * Fills `into` with the bytes at `offset`; returns how many were written, which is less than
   * `into.length` only at the end of the blob.
   */
  readAt(digest: Digest, offset: number, into: Uint8Array, signal?: AbortSignal): Promise<number>;
}

/** A blob reader that can also fetch ahead into its cache (the chunk reader). */
export interface PrefetchingBlobReader extends BlobReader {
  /** `near`: a reader is right behind, so these requests go before other read-ahead. */
  prefetch?(digest: Digest, offset: number, length: number, size: number, near?: boolean): Promise<void>;
}

/** Lower seam used by the chunk reader: one HTTP range of one blob into the caller's buffer. */
export interface RangeFetcher extends BlobReader {
  /** Stable identity of where bytes come from, e.g. `host/repo`; never includes credentials. */
  readonly origin: string;
}
