import type { BlobReader } from '../lib/blob-reader.js';
import type { Digest } from '../lib/digest.js';
import { UnsupportedMediaTypeError } from '../lib/errors.js';
import type { Logger } from '../lib/logger.js';
import { LayerFormatError } from './errors.js';
import { readEntryBytes } from './entry-bytes.js';
import { buildGzipIndex } from './gzip-index.js';
import { GzipRandomReader, type SpanCache } from './gzip-reader.js';
import { type LayerIndex, decodeIndex, encodeIndex } from './index-codec.js';
import type { TarEntry } from './tar-entry.js';
import { TarFormatError } from './tar-header.js';
import { TarStreamParser } from './tar-stream.js';
import { TOC_DIGEST_ANNOTATION, openEStargzLayer, parseFooter } from './estargz.js';

export interface LayerDescriptor {
  digest: Digest;
  size: number;
  mediaType: string;
  annotations?: Record<string, string> | undefined;
}

/** Where layer indexes persist (the cache dir); never evicted with chunks. */
export interface IndexStore {
  load(key: string): Promise<Buffer | undefined>;
  save(key: string, data: Buffer): Promise<void>;
}

export interface LayerDeps {
  blobs: BlobReader;
  indexes: IndexStore;
  spans: SpanCache;
  log: Logger;
  /** Output bytes between gzip checkpoints. */
  span?: number;
  /** Largest uncompressed layer accepted (bombs). */
  maxUncompressed?: number;
  onIndexProgress?: (digest: Digest, compressedDone: number, compressedTotal: number) => void;
  onIndexBuilt?: (digest: Digest, format: string, ms: number) => void;
}

/** A layer's file list and the bytes of its files, whatever its format. */
export interface Layer {
  readonly descriptor: LayerDescriptor;
  entries(): Promise<TarEntry[]>;
  read(entry: TarEntry, offset: number, into: Uint8Array, signal?: AbortSignal): Promise<number>;
  /** Compressed bytes worth fetching as soon as the mount is ready (eStargz prefetch landmark). */
  prefetchRange?(): Promise<{ start: number; end: number } | undefined>;
}

const GZIP_TYPES = new Set([
  'application/vnd.oci.image.layer.v1.tar+gzip',
  'application/vnd.oci.image.layer.nondistributable.v1.tar+gzip',
  'application/vnd.docker.image.rootfs.diff.tar.gzip',
  'application/vnd.docker.image.rootfs.foreign.diff.tar.gzip',
]);
const TAR_TYPES = new Set([
  'application/vnd.oci.image.layer.v1.tar',
  'application/vnd.oci.image.layer.nondistributable.v1.tar',
  'application/vnd.docker.image.rootfs.diff.tar',
]);

export function layerFormat(mediaType: string): 'gzip' | 'tar' | undefined {
  if (GZIP_TYPES.has(mediaType)) return 'gzip';
  if (TAR_TYPES.has(mediaType)) return 'tar';
  return undefined;
}

/**
 * Opens a layer: its index is loaded from the index store or built once (single-flight) and
 * saved; reads go straight to the blob (tar) or through the checkpoint index (gzip).
 */
export function openLayer(desc: LayerDescriptor, deps: LayerDeps): Layer {
  if (desc.annotations?.[TOC_DIGEST_ANNOTATION] !== undefined && layerFormat(desc.mediaType) === 'gzip') return openEStargzLayer(desc, deps);
  if (layerFormat(desc.mediaType) !== 'gzip') return openIndexedLayer(desc, deps);
  // A gzip layer may be eStargz without the annotation: its footer says so. Decide once, on first
  // use; a layer already indexed as plain gzip needs no probe.
  let impl: Promise<Layer> | undefined;
  const resolve = (): Promise<Layer> => {
    if (!impl) {
      impl = (async () => {
        if (await deps.indexes.load(indexKey(desc, 'gzip')).catch(() => undefined)) return openIndexedLayer(desc, deps);
        const tail = Buffer.alloc(Math.min(desc.size, 51));
        await deps.blobs.readAt(desc.digest, desc.size - tail.length, tail);
        const toc = parseFooter(tail);
        return toc === undefined ? openIndexedLayer(desc, deps) : openEStargzLayer(desc, deps, toc);
      })();
      impl.catch(() => (impl = undefined));
    }
    return impl;
  };
  return {
    descriptor: desc,
    entries: async () => (await resolve()).entries(),
    read: async (entry, offset, into, signal) => (await resolve()).read(entry, offset, into, signal),
    prefetchRange: async () => (await resolve()).prefetchRange?.(),
  };
}

function indexKey(desc: LayerDescriptor, format: string): string {
  return `${desc.digest.replace(':', '-')}.${format}`;
}

function openIndexedLayer(desc: LayerDescriptor, deps: LayerDeps): Layer {
  const format = layerFormat(desc.mediaType);
  let index: Promise<LayerIndex> | undefined;
  let gzipReader: GzipRandomReader | undefined;
  const readBlob = (offset: number, into: Uint8Array, signal?: AbortSignal): Promise<number> => deps.blobs.readAt(desc.digest, offset, into, signal);

  const load = async (): Promise<LayerIndex> => {
    if (!format) throw new UnsupportedMediaTypeError(desc.mediaType, 'layer', { digest: desc.digest });
    const key = indexKey(desc, format);
    const stored = await deps.indexes.load(key).catch(() => undefined);
    const decoded = stored ? await decodeIndex(stored) : undefined;
    if (decoded && decoded.format === format && decoded.compressedSize === desc.size) return decoded;
    const started = Date.now();
    const built = format === 'gzip' ? await indexGzip(desc, deps, readBlob) : await indexTar(desc, readBlob);
    deps.onIndexBuilt?.(desc.digest, format, Date.now() - started);
    await deps.indexes.save(key, await encodeIndex(built)).catch((e: Error) => deps.log.warn({ layer: desc.digest, err: e.message }, 'cannot save the layer index; it will be rebuilt next time'));
    return built;
  };

  const getIndex = (): Promise<LayerIndex> => {
    if (!index) {
      index = load();
      // A failed build is not remembered: the next lookup tries again.
      index.catch(() => (index = undefined));
    }
    return index;
  };

  return {
    descriptor: desc,
    entries: async () => (await getIndex()).entries,
    async read(entry, offset, into, signal) {
      const ix = await getIndex();
      if (ix.format === 'tar') return readEntryBytes(entry, offset, into, readBlob, signal);
      gzipReader ??= new GzipRandomReader(desc.digest, { checkpoints: ix.checkpoints, compressedSize: ix.compressedSize, uncompressedSize: ix.uncompressedSize }, readBlob, deps.spans);
      const gz = gzipReader;
      return readEntryBytes(entry, offset, into, (at, buf, sig) => gz.read(at, buf, sig), signal);
    },
  };
}

async function indexGzip(desc: LayerDescriptor, deps: LayerDeps, readBlob: (o: number, i: Uint8Array) => Promise<number>): Promise<LayerIndex> {
  const parser = new TarStreamParser();
  let last = 0;
  try {
    const gz = await buildGzipIndex(desc.digest, desc.size, readBlob, (chunk) => parser.push(chunk), {
      span: deps.span ?? 2 << 20,
      maxOutput: deps.maxUncompressed ?? 64 * 1024 ** 3,
      onProgress: (done) => {
        deps.onIndexProgress?.(desc.digest, done, desc.size);
        if (done - last >= desc.size / 10 && desc.size > 32 << 20) {
          last = done;
          deps.log.info({ layer: desc.digest, percent: Math.round((100 * done) / desc.size) }, 'indexing layer');
        }
      },
    });
    return { format: 'gzip', compressedSize: desc.size, uncompressedSize: gz.uncompressedSize, entries: parser.entries, checkpoints: gz.checkpoints };
  } catch (e) {
    if (e instanceof TarFormatError) throw new LayerFormatError(desc.digest, `bad tar inside gzip: ${e.message}`);
    throw e;
  }
}

/** Plain tar: each header says where the next one is, so only headers are read. */
async function indexTar(desc: LayerDescriptor, readBlob: (o: number, i: Uint8Array) => Promise<number>): Promise<LayerIndex> {
  const parser = new TarStreamParser();
  const buf = Buffer.allocUnsafe(64 * 1024);
  try {
    while (!parser.ended && parser.position < desc.size) {
      const skip = parser.skippable;
      if (skip > 0) {
        parser.skipTo(Math.min(desc.size, parser.position + skip));
        continue;
      }
      // Read a little past the header: small files' data and the next headers often come along.
      const n = await readBlob(parser.position, buf.subarray(0, Math.min(buf.length, desc.size - parser.position)));
      if (n === 0) break;
      parser.push(buf.subarray(0, n));
    }
  } catch (e) {
    if (e instanceof TarFormatError) throw new LayerFormatError(desc.digest, `bad tar: ${e.message}`);
    throw e;
  }
  if (!parser.ended && parser.position < desc.size) throw new LayerFormatError(desc.digest, 'tar ends early');
  return { format: 'tar', compressedSize: desc.size, uncompressedSize: desc.size, entries: parser.entries, checkpoints: [] };
}
