import type { RegfsConfig } from '../config/schema.js';
import type { BlobReader } from '../lib/blob-reader.js';
import type { Logger } from '../lib/logger.js';
import { type ResolvedImage, createBlobFetcher, hostPlatform, parsePlatform, parseReference, resolveImage } from '../registry/index.js';
import type { Registry } from '../registry/index.js';
import { createLogger } from './logger.js';
import { setupRegistry } from './registry-setup.js';

/** What CLI commands get: resolution and blob reads wired from one config. */
export interface Services {
  readonly logger: Logger;
  resolve(ref: string, signal?: AbortSignal): Promise<ResolvedImage>;
  blobReader(ref: string): BlobReader;
}

export async function withServices<T>(cfg: RegfsConfig, fn: (s: Services) => Promise<T>): Promise<T> {
  const logger = createLogger(cfg.logLevel);
  let registry: Registry | undefined;
  try {
    registry = await setupRegistry(cfg, logger);
    const client = registry.client;
    const platform = cfg.platform ? parsePlatform(cfg.platform) : hostPlatform();
    return await fn({
      logger,
      resolve: (ref, signal) => resolveImage(client, parseReference(ref), platform, signal),
      blobReader: (ref) => {
        const r = parseReference(ref);
        return createBlobFetcher(client, { endpoint: r.endpoint, repository: r.repository });
      },
    });
  } finally {
    await registry?.close();
    logger.flush();
  }
}
