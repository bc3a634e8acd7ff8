import type { ChunkReader } from '../blob/chunk-reader.js';
import type { RoutingUpstream } from '../blob/routing-upstream.js';
import { addImageTrees, buildImageLayout, type PrefetchingBlobReader } from './image-layout.js';
import type { FsNode, InodeAllocator } from '../fs/node.js';
import type { SpanCache } from '../image/gzip-reader.js';
import { ImageTrees } from '../image/image-trees.js';
import { builtinFormats } from '../image/formats/builtin.js';
import { PRIORITY } from '../image/formats/registry.js';
import { type DerivedStore, type IndexStore, type Layer, type LayerDescriptor, openLayer } from '../image/layer.js';
import { PART_BYTES } from '../image/soci/read-in-parts.js';
import { type ZtocRef, sociFormat } from '../image/soci/soci-layer.js';
import type { BlobReader } from '../lib/blob-reader.js';
import type { Digest } from '../lib/digest.js';
import type { Logger } from '../lib/logger.js';
import { formatSize } from '../lib/size.js';
import type { ResolvedImage } from '../registry/index.js';
import type { ProfileHooks } from './profile-recorder.js';
import { servedAs } from './profile-format.js';

/** Where layer indexing reports to (the daemon's metrics). */
export interface IndexReporter {
  indexBuilt(format: string): void;
  /** A layer opened, by how it is served (#14). */
  layerServed(how: string): void;
  indexProgress(layer: string, done: number, total: number): void;
}

export interface AssemblyDeps {
  reader: ChunkReader;
  routes: RoutingUpstream;
  indexes: IndexStore;
  spans: SpanCache;
  derived?: DerivedStore | undefined;
  inodes: InodeAllocator;
  logger: Logger;
  metrics: IndexReporter;
  onProgress?: ((text: string) => void) | undefined;
  /** Called on every data read of the image (idle tracking). */
  touch?: (() => void) | undefined;
  /** Absolute path of the image's directory in the mount, for `<dir>/lowerdir`. */
  imageDir?: string | undefined;
  /** Access profile recording and replay (#15): sees layers and their blob reads. */
  profile?: ProfileHooks | undefined;
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
  // zTOCs of a SOCI index (#14) are read like blobs of the image but are not listed in blobs/.
  const ztocs = sociZtocs(img.manifest.layers, img.soci?.index?.ztocs);
  for (const b of [...blobs, ...ztocs.values()]) {
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
  const formats = ztocs.size ? builtinFormats().register(sociFormat(ztocs), PRIORITY.ztoc) : builtinFormats();
  const layerBlobs = deps.profile?.wrapBlobs(reader) ?? reader;
  const layers = img.manifest.layers.map((d) =>
    openLayer(d, {
      blobs: layerBlobs,
      indexes: deps.indexes,
      spans: deps.spans,
      derived: deps.derived,
      log: deps.logger,
      onLayerServed: (digest: Digest, how: string) => {
        deps.metrics.layerServed(how);
        deps.profile?.layerServed(digest, servedAs(how, ztocs.get(digest)?.digest));
        deps.logger.info({ layer: digest, how }, 'layer served');
      },
      onIndexBuilt: (digest: Digest, format: string, ms: number) => {
        deps.metrics.indexBuilt(format);
        deps.logger.info({ layer: digest, format, ms }, 'layer indexed');
      },
      onIndexProgress: (digest: Digest, done: number, total: number) => {
        deps.metrics.indexProgress(digest, done, total);
        deps.onProgress?.(`indexing layer ${digest.slice(7, 19)}: ${formatSize(done)} / ${formatSize(total)} (${Math.round((100 * done) / total)}%)`);
      },
    }, formats),
  ).map((l) => deps.profile?.wrapLayer(l) ?? l);
  addImageTrees(root, new ImageTrees(layers, (layer, p) => deps.logger.warn({ layer, entry: p.path }, p.why)), deps.inodes, deps.imageDir);
  return { root, layers };
}

/** The zTOCs of a SOCI index for the manifest's own layers (an index may list others: ignored). */
function sociZtocs(layers: readonly LayerDescriptor[], ztocs: ReadonlyMap<string, ZtocRef> | undefined): Map<string, ZtocRef> {
  return new Map([...(ztocs ?? [])].filter(([layer]) => layers.some((l) => l.digest === layer)));
}

/**
 * A SOCI layer's first lookup needs its zTOC, the layer's first bytes (the TOC is checked
 * against the first tar header) and its last bytes (the eStargz footer probe, tried first):
 * asks for all of them at once, the zTOC in parallel parts (one range per part beats a
 * per-connection cap). `regfs mount` calls it as soon as the SOCI index is known — beside the
 * config fetch, before the tree is assembled (#14). The layer store does not: there a pull must
 * move no layer bytes (#18), and layers are opened by the runtime's first look instead.
 */
export function warmSociLayers(layers: readonly LayerDescriptor[], index: ReadonlyMap<string, ZtocRef> | undefined, source: BlobReader, deps: Pick<AssemblyDeps, 'reader' | 'routes'>): void {
  const ztocs = sociZtocs(layers, index);
  for (const l of layers) {
    const z = ztocs.get(l.digest);
    if (!z) continue;
    deps.routes.route(z.digest, source);
    deps.reader.knowSize(z.digest, z.size);
    deps.routes.route(l.digest, source);
    deps.reader.knowSize(l.digest, l.size);
    const warm = [deps.reader.prefetch(l.digest, 0, 64 * 1024, l.size), deps.reader.prefetch(l.digest, Math.max(0, l.size - 64), 64, l.size)];
    for (let at = 0; at < z.size; at += PART_BYTES) warm.push(deps.reader.prefetch(z.digest, at, Math.min(PART_BYTES, z.size - at), z.size));
    for (const w of warm) w.catch(() => {}); // a failure shows again, and is reported, when the layer is opened
  }
}
