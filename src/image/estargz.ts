import { promisify } from 'node:util';
import { createGunzip, gunzip } from 'node:zlib';
import { LayerFormatError } from './errors.js';
import { layerCompression } from './formats/media-types.js';
import type { LayerFormat } from './formats/registry.js';
import { indexKey } from './formats/indexed.js';
import { TarStreamParser } from './tar-stream.js';
import type { TocDecompressor, TocLocation } from './toc/decompressor.js';
import { openTocLayer } from './toc/toc-layer.js';

const gunzipAsync = promisify(gunzip);

/** containerd's annotation for the digest of the uncompressed TOC JSON. */
export const TOC_DIGEST_ANNOTATION = 'containerd.io/snapshot/stargz/toc.digest';
const FOOTER = 51;
const LEGACY_FOOTER = 47;

/** The TOC offset from the 51-byte footer (or the 47-byte legacy one), else undefined. */
export function parseFooter(tail: Buffer): number | undefined {
  const at = (b: Buffer): number | undefined => {
    if (b.length < 16 || b[0] !== 0x1f || b[1] !== 0x8b || b[2] !== 8 || (b[3]! & 4) === 0) return undefined;
    const xlen = b.readUInt16LE(10);
    let extra = b.subarray(12, 12 + xlen);
    if (xlen === 26 && extra[0] === 0x53 && extra[1] === 0x47 && extra.readUInt16LE(2) === 22) extra = extra.subarray(4);
    else if (xlen !== 22) return undefined;
    const s = extra.toString('latin1');
    if (!/^[0-9a-f]{16}STARGZ$/.test(s)) return undefined;
    return parseInt(s.slice(0, 16), 16);
  };
  return (tail.length >= FOOTER ? at(tail.subarray(tail.length - FOOTER)) : undefined) ?? (tail.length >= LEGACY_FOOTER ? at(tail.subarray(tail.length - LEGACY_FOOTER)) : undefined);
}

/**
 * eStargz's compression (stargz-snapshotter estargz `GzipDecompressor`): each chunk is its own
 * gzip member; the TOC is a gzip'd tar holding `stargz.index.json`, running to the end of the blob
 * (the footer that follows it is an empty member); the annotation pins the JSON's digest.
 */
export const gzipTocDecompressor: TocDecompressor = {
  format: 'eStargz',
  footerSize: FOOTER,
  digestOf: 'json',
  parseFooter(tail: Buffer, blobSize: number): TocLocation | undefined {
    const offset = parseFooter(tail);
    return offset === undefined ? undefined : { offset, length: blobSize - offset };
  },
  async parseToc(raw, maxJson) {
    const tar: Buffer = await gunzipAsync(raw, { maxOutputLength: maxJson + 4096 });
    const parser = new TarStreamParser();
    parser.push(tar);
    const entry = parser.entries.find((e) => e.path === 'stargz.index.json');
    if (!entry) throw new Error('TOC tar has no stargz.index.json');
    return tar.subarray(entry.dataOffset, entry.dataOffset + entry.size);
  },
  decompress: gunzipPrefix,
};

/**
 * eStargz (TOC format v1): with the annotation the layer is eStargz for sure; without it, the
 * footer says so. A layer this cache already indexed as plain gzip was probed before and found
 * without a footer, so it is declined without a fetch.
 */
export const estargzFormat: LayerFormat = {
  name: 'estargz',
  accepts: (desc) => layerCompression(desc.mediaType) === 'gzip',
  async open(desc, deps, probe) {
    const expectedDigest = desc.annotations?.[TOC_DIGEST_ANNOTATION];
    if (expectedDigest === undefined && (await probe.storedIndex(indexKey(desc.digest, 'gzip')))) return undefined;
    const location = gzipTocDecompressor.parseFooter(await probe.tail(FOOTER), desc.size);
    if (location === undefined) {
      if (expectedDigest === undefined) return undefined;
      throw new LayerFormatError(desc.digest, 'eStargz: the TOC digest annotation is set but the blob has no eStargz footer');
    }
    return openTocLayer(desc, deps, { decompressor: gzipTocDecompressor, location, expectedDigest });
  },
};

/**
 * The first `size` bytes of a gzip stream. A chunk's compressed range runs to the next entry that
 * has an offset, so it can also hold the members of entries without data (directories, links).
 */
function gunzipPrefix(gz: Buffer, size: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const z = createGunzip();
    const parts: Buffer[] = [];
    let n = 0;
    z.on('data', (d: Buffer) => {
      parts.push(d);
      n += d.length;
      if (n >= size) {
        z.destroy();
        resolve(Buffer.concat(parts).subarray(0, size));
      }
    });
    z.on('end', () => resolve(Buffer.concat(parts)));
    z.on('error', reject);
    z.end(gz);
  });
}
