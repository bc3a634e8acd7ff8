import type { RegfsConfig } from '../config/schema.js';
import { BlockStore } from '../cache/block-store.js';
import { MemoryChunkCache } from '../cache/memory-chunk-cache.js';
import { ChunkReader, type Upstream } from '../blob/chunk-reader.js';
import { RoutingUpstream } from '../blob/routing-upstream.js';
import { DiskIndexStore } from '../cache/index-store.js';
import type { Logger } from '../lib/logger.js';

export async function openStore(cfg: RegfsConfig, logger: Logger, lock = true): Promise<BlockStore> {
  // --chunk-size is the block: the unit fetched for a random read and checksummed on disk.
  return BlockStore.open({ dir: cfg.cacheDir, maxBytes: lock ? cfg.cacheSize : Number.MAX_SAFE_INTEGER, blockSize: cfg.chunkSize, logger, lock });
}

function createChunkReader(cfg: RegfsConfig, store: BlockStore, upstream: Upstream, logger: Logger): ChunkReader {
  return new ChunkReader(store, upstream, {
    maxRequestBytes: Math.max(cfg.chunkSize, 8 << 20),
    prefetchRequestBytes: Math.max(cfg.chunkSize, 4 << 20),
    globalConcurrency: Math.max(4, cfg.connections * 2),
    perBlobConcurrency: Math.max(2, cfg.connections),
    // Fetched bytes waiting for the disk: enough to keep a fast network busy, small enough for
    // the daemon to stay under ~150 MB while streaming a large blob.
    maxPendingWriteBytes: 16 << 20,
    logger,
  });
}

/** Everything between the filesystem and the registry: disk cache, chunk reader, layer indexes. */
export interface DataPath {
  store: BlockStore;
  routes: RoutingUpstream;
  reader: ChunkReader;
  indexes: DiskIndexStore;
  spans: MemoryChunkCache;
  /** Decoded zstd bytes kept with the chunks (same LRU bound, kept across restarts). */
  derived: BlockStore;
  /** Waits for cache writes, then releases the cache dir. */
  close(): Promise<void>;
}

export async function openDataPath(cfg: RegfsConfig, logger: Logger): Promise<DataPath> {
  const store = await openStore(cfg, logger);
  const routes = new RoutingUpstream();
  const reader = createChunkReader(cfg, store, routes, logger);
  return {
    store,
    routes,
    reader,
    indexes: await DiskIndexStore.open(cfg.cacheDir),
    spans: new MemoryChunkCache(32 << 20),
    derived: store,
    close: async () => {
      await reader.flush();
      await store.close();
    },
  };
}
