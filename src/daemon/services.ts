import type { RegfsConfig } from '../config/schema.js';
import type { BlobReader } from '../lib/blob-reader.js';
import type { Logger } from '../lib/logger.js';
import { type ResolvedImage, createBlobFetcher, hostPlatform, parsePlatform, parseReference, resolveImage } from '../registry/index.js';
import type { Registry } from '../registry/index.js';
import { RoutingUpstream } from '../blob/routing-upstream.js';
import type { ChunkReader } from '../blob/chunk-reader.js';
import type { BlockStore } from '../cache/block-store.js';
import { createChunkReader, openStore } from './cache-setup.js';
import { createLogger } from './logger.js';
import { setupRegistry } from './registry-setup.js';

/** What CLI commands get: resolution and blob reads through the cache, wired from one config. */
export interface Services {
  readonly logger: Logger;
  resolve(ref: string, signal?: AbortSignal): Promise<ResolvedImage>;
  /** Blobs of the reference's repository, read through the chunk cache. */
  blobReader(ref: string): BlobReader;
  readonly reader: ChunkReader;
  readonly store: BlockStore;
}

export async function withServices<T>(cfg: RegfsConfig, fn: (s: Services) => Promise<T>): Promise<T> {
  const logger = createLogger(cfg.logLevel);
  let registry: Registry | undefined;
  let store: BlockStore | undefined;
  try {
    registry = await setupRegistry(cfg, logger);
    store = await openStore(cfg, logger);
    const client = registry.client;
    const platform = cfg.platform ? parsePlatform(cfg.platform) : hostPlatform();
    const routes = new RoutingUpstream();
    const reader = createChunkReader(cfg, store, routes, logger);
    const result = await fn({
      logger,
      reader,
      store,
      resolve: (ref, signal) => resolveImage(client, parseReference(ref), platform, signal),
      blobReader: (ref) => {
        const r = parseReference(ref);
        const fetcher = createBlobFetcher(client, { endpoint: r.endpoint, repository: r.repository });
        return {
          size: (d, s) => (routes.route(d, fetcher), reader.size(d, s)),
          readAt: (d, o, into, s) => (routes.route(d, fetcher), reader.readAt(d, o, into, s)),
        };
      },
    });
    await reader.flush();
    return result;
  } finally {
    await store?.close();
    await registry?.close();
    logger.flush();
  }
}
