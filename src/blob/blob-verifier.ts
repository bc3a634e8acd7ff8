import type { BlockStore } from '../cache/block-store.js';
import type { Digest } from '../lib/digest.js';
import { digestAlgorithm } from '../lib/digest.js';
import type { Logger } from '../lib/logger.js';
import type { ReaderCounters } from './counters.js';

/**
 * Once every block of a blob is on disk, hash it against its digest, once, in a worker thread
 * (the thread answering FUSE only dispatches). A mismatch means the registry or the disk handed
 * us wrong bytes: the blob is purged and the event logged.
 */
export class BlobVerifier {
  private readonly running = new Set<string>();

  constructor(
    private readonly store: BlockStore,
    private readonly counters: ReaderCounters,
    private readonly log: Logger,
  ) {}

  async maybeVerify(digest: Digest, key: string): Promise<void> {
    if (this.running.has(key) || !this.store.isComplete(key) || this.store.isVerified(key)) return;
    this.running.add(key);
    try {
      const algo = digestAlgorithm(digest);
      const hex = await this.store.hashBlob(key, algo);
      if (hex === undefined) return; // evicted meanwhile: verify another time
      this.counters.blobsVerified++;
      const actual = `${algo}:${hex}`;
      if (actual === digest) return await this.store.markVerified(key);
      this.counters.blobsPurged++;
      this.log.error({ digest, actual }, `blob ${digest} hashes to ${actual}; purged from the cache`);
      await this.store.deleteBlob(key);
    } finally {
      this.running.delete(key);
    }
  }
}
