import type { ChunkReader } from '../blob/chunk-reader.js';
import type { RoutingUpstream } from '../blob/routing-upstream.js';
import { addImageTrees, buildImageLayout, type PrefetchingBlobReader } from './image-layout.js';
import type { FsNode, InodeAllocator } from '../fs/node.js';
import type { SpanCache } from '../image/gzip-reader.js';
import { ImageTrees } from '../image/image-trees.js';
import { type IndexStore, type Layer, openLayer } from '../image/layer.js';
import type { BlobReader } from '../lib/blob-reader.js';
import type { Digest } from '../lib/digest.js';
import type { Logger } from '../lib/logger.js';
import { formatSize } from '../lib/size.js';
import type { ResolvedImage } from '../registry/index.js';

/** Where layer indexing reports to (the daemon's metrics). */
export interface IndexReporter {
  indexBuilt(format: string): void;
  indexProgress(layer: string, done: number, total: number): void;
}

export interface AssemblyDeps {
  reader: ChunkReader;
  routes: RoutingUpstream;
  indexes: IndexStore;
  spans: SpanCache;
  inodes: InodeAllocator;
  logger: Logger;
  metrics: IndexReporter;
  onProgress?: ((text: string) => void) | undefined;
  /** Called on every data read of the image (idle tracking). */
  touch?: (() => void) | undefined;
}

function createdMs(config: unknown): number {
  const c = (config as { created?: unknown })?.created;
  const t = typeof c === 'string' ? Date.parse(c) : NaN;
  return Number.isNaN(t) ? 0 : t;
}

/**
 * One image as a directory: manifest.json, config.json, blobs/, layers/, rootfs/. Blobs are
 * routed to `source` (the image's repository) and read through the shared chunk reader.
 */
export function assembleImage(img: ResolvedImage, source: BlobReader, deps: AssemblyDeps, rootIno?: number): { root: FsNode; layers: Layer[] } {
  const blobs = [img.manifest.config, ...img.manifest.layers].map((d) => ({ digest: d.digest, size: d.size }));
  for (const b of blobs) {
    deps.routes.route(b.digest, source);
    deps.reader.knowSize(b.digest, b.size);
  }
  const touch = deps.touch;
  const reader: PrefetchingBlobReader = touch
    ? {
        size: (d, s) => deps.reader.size(d, s),
        readAt: (d, o, i, s) => (touch(), deps.reader.readAt(d, o, i, s)),
        prefetch: (d, o, l, size, near) => deps.reader.prefetch(d, o, l, size, near),
      }
    : deps.reader;
  const root = buildImageLayout(
    { manifestBytes: img.manifestBytes, configBytes: img.configBytes, configDigest: img.manifest.config.digest, blobs, createdMs: createdMs(img.config) },
    reader,
    deps.inodes,
    rootIno ?? deps.inodes.allocate(),
  );
  const layers = img.manifest.layers.map((d) =>
    openLayer(d, {
      blobs: reader,
      indexes: deps.indexes,
      spans: deps.spans,
      log: deps.logger,
      onIndexBuilt: (digest: Digest, format: string, ms: number) => {
        deps.metrics.indexBuilt(format);
        deps.logger.info({ layer: digest, format, ms }, 'layer indexed');
      },
      onIndexProgress: (digest: Digest, done: number, total: number) => {
        deps.metrics.indexProgress(digest, done, total);
        deps.onProgress?.(`indexing layer ${digest.slice(7, 19)}: ${formatSize(done)} / ${formatSize(total)} (${Math.round((100 * done) / total)}%)`);
      },
    }),
  );
  addImageTrees(root, new ImageTrees(layers, (layer, p) => deps.logger.warn({ layer, entry: p.path }, p.why)), deps.inodes);
  return { root, layers };
}
