import { displayName } from '../../lib/byte-name.js';
import { AbortedError } from '../../lib/errors.js';
import { sha256Digest } from '../../lib/hash.js';
import { SingleFlight } from '../../lib/single-flight.js';
import { LayerFormatError } from '../errors.js';
import type { Layer, LayerDeps, LayerDescriptor } from '../layer.js';
import type { TarEntry } from '../tar-entry.js';
import type { TocDecompressor, TocLocation } from './decompressor.js';
import { TocJsonError, parseTocJson } from './toc-json.js';
import { type TocChunk, buildTocTree } from './toc-tree.js';

/** A TOC larger than this is refused (the formats have no limit; memory does). */
export const MAX_TOC = 64 << 20;

export interface TocLayerOptions {
  decompressor: TocDecompressor;
  location: TocLocation;
  /** The TOC digest from the layer's annotation; without one the TOC is used unverified (logged). */
  expectedDigest: string | undefined;
}

/**
 * A layer whose file list comes from a TOC in the blob and whose files are read from their own
 * compressed chunks, so reading one file fetches only its chunks. The TOC is fetched and checked
 * here (before the layer counts as opened); every chunk is checked against its `chunkDigest`
 * before it is served, and concurrent readers of one chunk share one fetch and one decompression.
 */
export async function openTocLayer(desc: LayerDescriptor, deps: LayerDeps, opts: TocLayerOptions): Promise<Layer> {
  const { decompressor: dec, location } = opts;
  const fail = (why: string): LayerFormatError => new LayerFormatError(desc.digest, `${dec.format}: ${why}`);
  const readBlob = (offset: number, into: Uint8Array, signal?: AbortSignal): Promise<number> => deps.blobs.readAt(desc.digest, offset, into, signal);

  if (!Number.isSafeInteger(location.offset) || location.offset < 0 || location.offset >= desc.size) throw fail(`TOC offset ${location.offset} is outside the blob (${desc.size} bytes)`);
  if (!Number.isSafeInteger(location.length) || location.length <= 0 || location.offset + location.length > desc.size) {
    throw fail(`TOC of ${location.length} bytes at offset ${location.offset} runs past the blob's end (${desc.size} bytes)`);
  }
  if (location.length > MAX_TOC) throw fail(`TOC of ${location.length} bytes is larger than ${MAX_TOC}`);
  const raw = Buffer.alloc(location.length);
  if ((await readBlob(location.offset, raw)) !== raw.length) throw fail('blob ends inside the TOC');
  const check = (digest: string): void => {
    if (opts.expectedDigest !== undefined && opts.expectedDigest !== digest) throw fail(`TOC digest ${digest} does not match the annotation ${opts.expectedDigest}`);
  };
  if (dec.digestOf === 'compressed') check(sha256Digest(raw));
  let json: Buffer;
  try {
    json = await dec.parseToc(raw, MAX_TOC);
  } catch (e) {
    throw fail(`TOC cannot be read: ${(e as Error).message}`);
  }
  if (dec.digestOf === 'json') check(sha256Digest(json));
  if (opts.expectedDigest === undefined) deps.log.info({ layer: desc.digest, format: dec.format }, 'layer without a TOC digest annotation: the TOC is not verified');
  let tree;
  try {
    tree = buildTocTree(parseTocJson(json), location.offset, desc.size, fail);
  } catch (e) {
    if (e instanceof TocJsonError) throw fail(e.message);
    throw e;
  }
  const { entries, chunks, broken, landmark } = tree;

  const fetchChunk = async (c: TocChunk, entry: TarEntry): Promise<Buffer> => {
    const where = `chunk of ${displayName(entry.path)} at file offset ${c.fileOffset}`;
    const compressed = Buffer.alloc(c.end - c.start);
    const n = await readBlob(c.start, compressed);
    let data: Buffer;
    try {
      data = await dec.decompress(compressed.subarray(0, n), c.size);
    } catch (e) {
      throw fail(`${where} does not decompress: ${(e as Error).message}`);
    }
    if (data.length !== c.size) throw fail(`${where} is ${data.length} bytes, the TOC says ${c.size}`);
    if (c.digest !== undefined) {
      const got = sha256Digest(data);
      if (got !== c.digest) throw fail(`${where} hashes to ${got}, the TOC says ${c.digest}; refused`);
    }
    return data;
  };

  const flights = new SingleFlight<string, Buffer>();
  const chunkBytes = (c: TocChunk, entry: TarEntry): Promise<Buffer> => {
    if (c.zeros) return Promise.resolve(Buffer.alloc(c.size));
    const key = `${desc.digest}@${c.start}`;
    const hit = deps.spans.get(key);
    if (hit) return Promise.resolve(hit);
    return flights.run(key, async () => {
      const data = await fetchChunk(c, entry);
      deps.spans.set(key, data);
      return data;
    });
  };

  return {
    descriptor: desc,
    entries: async () => entries,
    async read(entry, offset, into, signal) {
      const why = broken.get(entry);
      if (why) throw fail(why);
      const end = Math.min(entry.size, offset + into.length);
      const wanted = (chunks.get(entry) ?? []).filter((c) => c.fileOffset < end && c.fileOffset + c.size > offset);
      const datas = await Promise.all(wanted.map((c) => chunkBytes(c, entry)));
      // The kernel's buffer may be gone once the signal fires: copy only while it is not.
      if (signal?.aborted) throw new AbortedError({ digest: desc.digest });
      let copied = 0;
      wanted.forEach((c, i) => {
        const from = Math.max(offset, c.fileOffset) - c.fileOffset;
        const to = Math.min(end, c.fileOffset + c.size) - c.fileOffset;
        into.set(datas[i]!.subarray(from, to), Math.max(offset, c.fileOffset) - offset);
        copied += to - from;
      });
      return copied;
    },
    prefetchRange: async () => (landmark === undefined ? undefined : { start: 0, end: landmark }),
  };
}
