import { LayerFormatError } from '../errors.js';
import { indexKey } from '../formats/indexed.js';
import { layerCompression } from '../formats/media-types.js';
import type { LayerFormat } from '../formats/registry.js';
import type { TocDecompressor, TocLocation } from '../toc/decompressor.js';
import { openTocLayer } from '../toc/toc-layer.js';
import { decodeZstdPrefix, decodeZstdPrefixAsync } from './zstd-decode.js';

/**
 * zstd:chunked (containers/storage pkg/chunked): every file's data is its own zstd frame(s), so
 * it can be fetched and decoded alone; the TOC (CRFS JSON, as eStargz) sits zstd-compressed in a
 * skippable frame near the end. Layer annotations give its position and the sha256 of its
 * compressed bytes; current containers/storage names them `io.github.containers.…`, the one in
 * Debian 12's skopeo (1.9) `io.containers.…`.
 */
const POSITION_KEYS = ['io.github.containers.zstd-chunked.manifest-position', 'io.containers.zstd-chunked.manifest-position'];
const CHECKSUM_KEYS = ['io.github.containers.zstd-chunked.manifest-checksum', 'io.containers.zstd-chunked.manifest-checksum'];
/** `ManifestTypeCRFS`: the only TOC type there is. */
const MANIFEST_TYPE_CRFS = 1;
/** Footer: a skippable frame (magic 0x184D2A50 LE + size) holding LE u64 fields and this magic. */
const SKIPPABLE_MAGIC = 0x184d2a50;
const FOOTER_MAGIC = Buffer.from('GnUlInUx', 'latin1');
/** 64 data bytes since tar-split was added to the footer; 40 before (skopeo 1.9). */
const FOOTER_SIZES = [64, 40];
const MAX_FOOTER = 8 + 64;

/** `offset:length:uncompressedLength:type` from the annotation, or undefined when absent. */
export function positionFromAnnotations(annotations: Record<string, string> | undefined, fail: (why: string) => Error): (TocLocation & { uncompressed: number }) | undefined {
  const key = POSITION_KEYS.find((k) => annotations?.[k] !== undefined);
  if (!key) return undefined;
  const v = annotations![key]!;
  const m = /^(\d{1,15}):(\d{1,15}):(\d{1,15}):(\d{1,15})$/.exec(v);
  if (!m) throw fail(`annotation ${key} is not offset:length:uncompressedLength:type: ${JSON.stringify(v)}`);
  if (Number(m[4]) !== MANIFEST_TYPE_CRFS) throw fail(`TOC type ${m[4]} is not supported (only ${MANIFEST_TYPE_CRFS}, CRFS)`);
  return { offset: Number(m[1]), length: Number(m[2]), uncompressed: Number(m[3]) };
}

export function checksumFromAnnotations(annotations: Record<string, string> | undefined): string | undefined {
  const key = CHECKSUM_KEYS.find((k) => annotations?.[k] !== undefined);
  return key ? annotations![key] : undefined;
}

/** The TOC location from the footer (either size), or undefined when the blob has none. */
function parseChunkedFooter(tail: Buffer): TocLocation | undefined {
  if (tail.length < 8 + 40 || !tail.subarray(tail.length - 8).equals(FOOTER_MAGIC)) return undefined;
  for (const size of FOOTER_SIZES) {
    const frame = tail.length - 8 - size;
    if (frame < 0 || tail.readUInt32LE(frame) !== SKIPPABLE_MAGIC || tail.readUInt32LE(frame + 4) !== size) continue;
    const data = tail.subarray(frame + 8);
    const field = (i: number): number => Number(data.readBigUInt64LE(8 * i));
    if (field(3) !== MANIFEST_TYPE_CRFS) return undefined;
    return { offset: field(0), length: field(1) };
  }
  return undefined;
}

export const zstdTocDecompressor: TocDecompressor = {
  format: 'zstd:chunked',
  footerSize: MAX_FOOTER,
  digestOf: 'compressed',
  parseFooter: (tail) => parseChunkedFooter(tail),
  async parseToc(raw, maxJson) {
    const json = decodeZstdPrefix(raw, maxJson + 1);
    if (json.length > maxJson) throw new Error(`TOC decodes to more than ${maxJson} bytes`);
    return json;
  },
  decompress: decodeZstdPrefixAsync,
};

/**
 * zstd:chunked: the annotations locate and pin the TOC; without them (a registry or copy that
 * dropped annotations) the footer finds it, unverified. A zstd layer with neither is plain zstd
 * and declined here.
 */
export const zstdChunkedFormat: LayerFormat = {
  name: 'zstd:chunked',
  accepts: (desc) => layerCompression(desc.mediaType) === 'zstd',
  async open(desc, deps, probe) {
    const fail = (why: string): LayerFormatError => new LayerFormatError(desc.digest, `zstd:chunked: ${why}`);
    const annotated = positionFromAnnotations(desc.annotations, fail);
    const expectedDigest = checksumFromAnnotations(desc.annotations);
    if (annotated && expectedDigest === undefined) deps.log.warn({ layer: desc.digest }, 'zstd:chunked layer has a TOC position but no checksum annotation');
    // Without annotations, a layer this cache already indexed as plain zstd was probed before.
    if (!annotated && (await probe.storedIndex(indexKey(desc.digest, 'zstd')))) return undefined;
    const location = annotated ?? zstdTocDecompressor.parseFooter(await probe.tail(MAX_FOOTER), desc.size);
    if (!location) return undefined;
    return openTocLayer(desc, deps, { decompressor: zstdTocDecompressor, location, expectedDigest: annotated ? expectedDigest : undefined });
  },
};
