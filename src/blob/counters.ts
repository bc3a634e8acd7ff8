/** What the chunk reader counts; the daemon exports these as metrics. */
export interface ReaderCounters {
  /** Bytes fetched over the network into the cache. */
  bytesFetched: number;
  /** Bytes copied to callers. */
  bytesServed: number;
  /** Range requests made. */
  requests: number;
  /** Range requests that covered more than one chunk. */
  coalescedRequests: number;
  /** Chunks served from disk / fetched. */
  chunkHits: number;
  chunkMisses: number;
  /** Whole-blob verifications run, and those that failed (the blob was purged). */
  blobsVerified: number;
  blobsPurged: number;
  /** Chunk fetches in flight right now, in bytes. */
  inFlightBytes: number;
  /** The most that was ever in flight at once. */
  peakInFlightBytes: number;
}

export function newReaderCounters(): ReaderCounters {
  return { bytesFetched: 0, bytesServed: 0, requests: 0, coalescedRequests: 0, chunkHits: 0, chunkMisses: 0, blobsVerified: 0, blobsPurged: 0, inFlightBytes: 0, peakInFlightBytes: 0 };
}
