import type { RegfsConfig } from '../config/schema.js';
import type { BlobReader } from '../lib/blob-reader.js';
import type { Logger } from '../lib/logger.js';
import { type ResolvedImage, createBlobFetcher, hostPlatform, parsePlatform, parseReference, resolveImage } from '../registry/index.js';
import type { ChunkReader } from '../blob/chunk-reader.js';
import type { BlockStore } from '../cache/block-store.js';
import { openDataPath } from './cache-setup.js';
import { createLogger } from './logger.js';
import { setupRegistry } from './registry-setup.js';
import { withScope } from './scope.js';

/** What CLI commands get: resolution and blob reads through the cache, wired from one config. */
export interface Services {
  readonly logger: Logger;
  resolve(ref: string, signal?: AbortSignal): Promise<ResolvedImage>;
  /** Blobs of the reference's repository, read through the chunk cache. */
  blobReader(ref: string): BlobReader;
  readonly reader: ChunkReader;
  readonly store: BlockStore;
}

/** The daemon's registry and data path without a mount, released when `fn` ends. */
export async function withServices<T>(cfg: RegfsConfig, fn: (s: Services) => Promise<T>): Promise<T> {
  const logger = createLogger(cfg.logLevel);
  try {
    return await withScope(logger, async (scope) => {
      const registry = await scope.use('registry', () => setupRegistry(cfg, logger), (r) => r.close());
      const { reader, store, routes } = await scope.use('data path', () => openDataPath(cfg, logger), (d) => d.close());
      const client = registry.client;
      const platform = cfg.platform ? parsePlatform(cfg.platform) : hostPlatform();
      return fn({
        logger,
        reader,
        store,
        resolve: (ref, signal) => resolveImage(client, parseReference(ref), platform, signal, { index: cfg.index }),
        blobReader: (ref) => {
          const r = parseReference(ref);
          const fetcher = createBlobFetcher(client, { endpoint: r.endpoint, repository: r.repository });
          return {
            size: (d, s) => (routes.route(d, fetcher), reader.size(d, s)),
            readAt: (d, o, into, s) => (routes.route(d, fetcher), reader.readAt(d, o, into, s)),
          };
        },
      });
    });
  } finally {
    logger.flush();
  }
}
