import type { Digest } from '../../lib/digest.js';
import { LayerFormatError } from '../errors.js';
import { buildGzipIndex } from '../gzip-index.js';
import { GzipRandomReader } from '../gzip-reader.js';
import { type LayerIndex, decodeIndex, encodeIndex } from '../index-codec.js';
import type { Layer, LayerDeps, LayerDescriptor } from '../layer.js';
import { TarFormatError } from '../tar-header.js';
import { TarStreamParser } from '../tar-stream.js';
import { buildZstdIndex } from '../zstd/zstd-index.js';
import { ZstdRandomReader } from '../zstd/zstd-reader.js';
import { type TarStreamReader, readEntryBytes } from './entry-read.js';
import { layerCompression } from './media-types.js';
import type { LayerFormat } from './registry.js';

type Indexable = LayerIndex['format'];

function indexable(desc: LayerDescriptor): Indexable | undefined {
  return layerCompression(desc.mediaType);
}

/** Where a layer's index is stored: one key per layer digest and format. */
export function indexKey(digest: Digest, format: string): string {
  return `${digest.replace(':', '-')}.${format}`;
}

/** A layer served through its index: entries from it, bytes from the uncompressed stream. */
function indexedLayer(desc: LayerDescriptor, deps: LayerDeps, ix: LayerIndex): Layer {
  const readBlob = (offset: number, into: Uint8Array, signal?: AbortSignal): Promise<number> => deps.blobs.readAt(desc.digest, offset, into, signal);
  const stream: TarStreamReader =
    ix.format === 'tar'
      ? { read: readBlob }
      : ix.format === 'zstd'
        ? new ZstdRandomReader(desc.digest, ix, readBlob, deps.spans, deps.derived, deps.log)
        : new GzipRandomReader(desc.digest, { checkpoints: ix.checkpoints, compressedSize: ix.compressedSize, uncompressedSize: ix.uncompressedSize }, readBlob, deps.spans);
  return {
    descriptor: desc,
    entries: async () => ix.entries,
    read: (entry, offset, into, signal) => readEntryBytes(entry, offset, into, stream, signal),
  };
}

/** An index this cache built before (tar, gzip, zstd): no pass over the layer. */
export const cachedIndexFormat: LayerFormat = {
  name: 'index',
  accepts: (desc) => indexable(desc) !== undefined,
  async open(desc, deps, probe) {
    const format = indexable(desc)!;
    const stored = await probe.storedIndex(indexKey(desc.digest, format));
    const ix = stored ? await decodeIndex(stored) : undefined;
    // An index of another version or size is not ours to trust: the local pass rebuilds it.
    return ix && ix.format === format && ix.compressedSize === desc.size ? indexedLayer(desc, deps, ix) : undefined;
  },
};

/** The local pass: the layer is read once (tar: headers only; zstd: decoded once, see zstd-spans.ts) and its index saved. */
export const localPassFormat: LayerFormat = {
  name: 'local-pass',
  accepts: (desc) => indexable(desc) !== undefined,
  async open(desc, deps) {
    const format = indexable(desc)!;
    const readBlob = (offset: number, into: Uint8Array): Promise<number> => deps.blobs.readAt(desc.digest, offset, into);
    // Plain tar reads only its headers: fetching ahead would fetch the whole layer.
    const passRead = format === 'tar' ? readBlob : fetchingAhead(desc, deps, readBlob);
    const started = Date.now();
    const built = format === 'gzip' ? await indexGzip(desc, deps, passRead) : format === 'zstd' ? await indexZstd(desc, deps, passRead) : await indexTar(desc, readBlob);
    deps.onIndexBuilt?.(desc.digest, format, Date.now() - started);
    await deps.indexes
      .save(indexKey(desc.digest, format), await encodeIndex(built))
      .catch((e: Error) => deps.log.warn({ layer: desc.digest, err: e.message }, 'cannot save the layer index; it will be rebuilt next time'));
    return indexedLayer(desc, deps, built);
  },
};

/**
 * How far ahead of itself a compressed pass keeps ranges in flight. The pass reads front to back
 * in 4 MiB steps; alone that is one HTTP stream at a time, capped by a registry's or CDN's
 * per-connection rate (the bench's WAN profile: 40 MiB/s, 20 ms RTT). 24 MiB ahead keeps several
 * 4 MiB ranges in flight, as a sequential file read does (fs/readahead.ts), so the pass runs at
 * the link's aggregate rate. The bytes land in the chunk cache, not in memory (#15).
 */
export const PASS_WINDOW = 24 << 20;

function fetchingAhead(desc: LayerDescriptor, deps: LayerDeps, read: (o: number, i: Uint8Array) => Promise<number>): (o: number, i: Uint8Array) => Promise<number> {
  const prefetch = deps.blobs.prefetch?.bind(deps.blobs);
  if (!prefetch) return read;
  let asked = 0; // compressed bytes up to which fetches have been started
  return (offset, into) => {
    const end = offset + into.length;
    // Top the window up once half of it is used, so requests stay 4 MiB ranges, not trickles.
    if (asked - end < PASS_WINDOW / 2 && asked < desc.size) {
      const from = Math.max(asked, end);
      asked = Math.min(desc.size, end + PASS_WINDOW);
      // A failed fetch ahead is the read's to retry: the pass's own readAt asks again.
      prefetch(desc.digest, from, asked - from, desc.size, true).catch(() => undefined);
    }
    return read(offset, into);
  };
}

/** Logs every 10% of a long pass, and reports progress. */
function progress(desc: LayerDescriptor, deps: LayerDeps): (done: number) => void {
  let last = 0;
  return (done) => {
    deps.onIndexProgress?.(desc.digest, done, desc.size);
    if (done - last >= desc.size / 10 && desc.size > 32 << 20) {
      last = done;
      deps.log.info({ layer: desc.digest, percent: Math.round((100 * done) / desc.size) }, 'indexing layer');
    }
  };
}

async function indexZstd(desc: LayerDescriptor, deps: LayerDeps, readBlob: (o: number, i: Uint8Array) => Promise<number>): Promise<LayerIndex> {
  const parser = new TarStreamParser();
  try {
    const z = await buildZstdIndex(desc.digest, desc.size, readBlob, (chunk) => parser.push(chunk), {
      span: deps.span ?? 2 << 20,
      maxOutput: deps.maxUncompressed ?? 64 * 1024 ** 3,
      derived: deps.derived,
      onProgress: progress(desc, deps),
    });
    return { format: 'zstd', compressedSize: desc.size, uncompressedSize: z.uncompressedSize, entries: parser.entries, checkpoints: z.checkpoints };
  } catch (e) {
    if (e instanceof TarFormatError) throw new LayerFormatError(desc.digest, `bad tar inside zstd: ${e.message}`);
    throw e;
  }
}

async function indexGzip(desc: LayerDescriptor, deps: LayerDeps, readBlob: (o: number, i: Uint8Array) => Promise<number>): Promise<LayerIndex> {
  const parser = new TarStreamParser();
  try {
    const gz = await buildGzipIndex(desc.digest, desc.size, readBlob, (chunk) => parser.push(chunk), {
      span: deps.span ?? 2 << 20,
      maxOutput: deps.maxUncompressed ?? 64 * 1024 ** 3,
      onProgress: progress(desc, deps),
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
