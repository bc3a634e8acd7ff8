import { type ByteName, isByteName } from '../lib/byte-name.js';
import { type Digest, isDigest } from '../lib/digest.js';
import { type ErrorContext, RegfsError } from '../lib/errors.js';

/**
 * An access profile (#15): which files of an image, and which byte ranges of them, a mount read
 * in its first minute, in order, plus the compressed ranges of each layer blob those reads
 * needed. Format and limits: docs/profile-format.md. It is JSON, one object, media type
 * `application/vnd.regfs.profile.v1+json` (also the artifact type of the OCI referrer it is
 * pushed as). Nothing in a profile is trusted: `decodeProfile` checks every field, bound and
 * digest before a byte of it is replayed.
 */
export const PROFILE_MEDIA_TYPE = 'application/vnd.regfs.profile.v1+json';
export const PROFILE_VERSION = 1;

/** A half-open byte range [start, end). */
export type Range = readonly [start: number, end: number];

export interface ProfileFile {
  /** The layer whose tar entry served the bytes. */
  layer: Digest;
  /** The entry's path in that layer (a byte name: any bytes, no leading `./` or `/`). */
  path: ByteName;
  /** Uncompressed offsets into the file, coalesced, in the order they were first read. */
  ranges: Range[];
}

export interface ProfileBlob {
  /** A layer of the image. */
  digest: Digest;
  /**
   * How the layer was served when the ranges were recorded (`servedAs`): the ranges are the
   * compressed bytes that way of reading needed, valid only where the layer is served the same way.
   */
  servedAs: string;
  /** Offsets into the blob, coalesced, in the order they were first read. */
  ranges: Range[];
}

export interface Profile {
  /** Manifest digest of the image it was recorded on. */
  image: Digest;
  recordedAt: string;
  /** How long the recording window was (ms). */
  windowMs: number;
  /** In order of first read. */
  files: ProfileFile[];
  blobs: ProfileBlob[];
}

/** Bounds: a profile is a prefetch hint, never worth more than this much disk, memory or network. */
export const PROFILE_LIMITS = {
  /** Encoded size; larger files are refused before parsing. */
  bytes: 4 << 20,
  files: 10_000,
  rangesPerEntry: 1024,
  /** Ranges of all files and blobs together. */
  ranges: 65_536,
  /** Compressed bytes the blob ranges may ask for altogether. */
  replayBytes: 1 << 30,
  /** One path (PAX allows any length; Linux's PATH_MAX is 4096). */
  pathBytes: 65_536,
} as const;

export class ProfileError extends RegfsError {
  constructor(why: string, ctx: ErrorContext = {}) {
    super('ERR_PROFILE', `access profile ignored: ${why}`, ctx);
  }
}

/**
 * The way a layer is served, as far as its compressed ranges go: a cached index and the local
 * pass make the same checkpoints, so both are `index`; a SOCI layer's spans are its zTOC's.
 */
export function servedAs(how: string, ztoc?: string): string {
  if (how === 'local-pass') return 'index';
  if (how === 'soci' && ztoc) return `soci ${ztoc}`;
  return how;
}

/** A path is written as UTF-8 text when its bytes are UTF-8, else as base64 of the bytes. */
function encodePath(p: ByteName): { path: string } | { pathBase64: string } {
  const bytes = Buffer.from(p, 'latin1');
  const text = bytes.toString('utf8');
  return Buffer.from(text, 'utf8').equals(bytes) ? { path: text } : { pathBase64: bytes.toString('base64') };
}

export function encodeProfile(p: Profile): Buffer {
  return Buffer.from(
    `${JSON.stringify({
      mediaType: PROFILE_MEDIA_TYPE,
      version: PROFILE_VERSION,
      image: p.image,
      recordedAt: p.recordedAt,
      windowMs: p.windowMs,
      files: p.files.map((f) => ({ layer: f.layer, ...encodePath(f.path), ranges: f.ranges })),
      blobs: p.blobs.map((b) => ({ digest: b.digest, servedAs: b.servedAs, ranges: b.ranges })),
    })}\n`,
  );
}

/**
 * `encodeProfile` within `PROFILE_LIMITS.bytes`. Counts alone do not bound the size (a tar path
 * may be 64 KiB long), so a profile that would not fit keeps its first files only — halved until
 * it does — and no blob ranges, which belonged to the files dropped too (replay then reads the
 * kept files through their layers).
 */
export function encodeProfileBounded(p: Profile): Buffer {
  let bytes = encodeProfile(p);
  for (let files = p.files; bytes.length > PROFILE_LIMITS.bytes && files.length > 0; ) {
    files = files.slice(0, Math.floor(files.length / 2));
    bytes = encodeProfile({ ...p, files, blobs: [] });
  }
  return bytes;
}

/** What a profile must agree with: the image it is replayed on. */
export interface ProfileExpectation {
  image: Digest;
  /** Layer digest → compressed size, from the manifest. */
  layers: ReadonlyMap<string, number>;
}

const obj = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/**
 * Bytes → a profile, or ProfileError naming the first thing wrong: too large, not JSON, another
 * media type or version, another image, a layer the image does not have, a range that is not a
 * range or lies past the end of its layer, too many entries. With `expect` omitted only the
 * structure is checked (`regfs profile show` of a file whose image is not at hand).
 */
export function decodeProfile(bytes: Uint8Array, expect?: ProfileExpectation): Profile {
  if (bytes.length > PROFILE_LIMITS.bytes) throw new ProfileError(`${bytes.length} bytes, more than the ${PROFILE_LIMITS.bytes}-byte limit`);
  let v: unknown;
  try {
    v = JSON.parse(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('utf8'));
  } catch (e) {
    throw new ProfileError(`not JSON (${(e as Error).message})`);
  }
  if (!obj(v)) throw new ProfileError('not a JSON object');
  if (v['mediaType'] !== PROFILE_MEDIA_TYPE) throw new ProfileError(`media type ${JSON.stringify(v['mediaType'])}, expected ${PROFILE_MEDIA_TYPE}`);
  if (v['version'] !== PROFILE_VERSION) throw new ProfileError(`version ${JSON.stringify(v['version'])}; this regfs reads version ${PROFILE_VERSION}`);
  const image = v['image'];
  if (typeof image !== 'string' || !isDigest(image)) throw new ProfileError('"image" is not a digest');
  if (expect && image !== expect.image) throw new ProfileError(`recorded for image ${image}, not ${expect.image}`, { digest: image });
  const windowMs = v['windowMs'];
  if (typeof windowMs !== 'number' || !Number.isSafeInteger(windowMs) || windowMs < 0) throw new ProfileError('"windowMs" is not a duration');
  const recordedAt = typeof v['recordedAt'] === 'string' ? v['recordedAt'].slice(0, 64) : '';
  const files = v['files'];
  const blobs = v['blobs'];
  if (!Array.isArray(files) || !Array.isArray(blobs)) throw new ProfileError('"files" and "blobs" must be arrays');
  if (files.length > PROFILE_LIMITS.files || blobs.length > PROFILE_LIMITS.files) throw new ProfileError(`more than ${PROFILE_LIMITS.files} entries`);
  let rangeCount = 0;
  const layerOf = (d: unknown, where: string): Digest => {
    if (typeof d !== 'string' || !isDigest(d)) throw new ProfileError(`${where}: not a digest`);
    if (expect && !expect.layers.has(d)) throw new ProfileError(`${where}: ${d} is not a layer of this image`, { digest: d });
    return d;
  };
  const rangesOf = (r: unknown, where: string, size: number): Range[] => {
    if (!Array.isArray(r) || r.length > PROFILE_LIMITS.rangesPerEntry) throw new ProfileError(`${where}: "ranges" must be an array of at most ${PROFILE_LIMITS.rangesPerEntry}`);
    rangeCount += r.length;
    if (rangeCount > PROFILE_LIMITS.ranges) throw new ProfileError(`more than ${PROFILE_LIMITS.ranges} ranges`);
    return r.map((x: unknown) => {
      if (!Array.isArray(x) || x.length !== 2 || !x.every((n) => Number.isSafeInteger(n)) || x[0] < 0 || x[1] <= x[0]) throw new ProfileError(`${where}: ${JSON.stringify(x)} is not a [start, end) range`);
      if (x[1] > size) throw new ProfileError(`${where}: range [${x[0]}, ${x[1]}) ends past the end (${size} bytes)`);
      return [x[0] as number, x[1] as number] as const;
    });
  };
  const outFiles = files.map((f: unknown, i): ProfileFile => {
    const where = `files[${i}]`;
    if (!obj(f)) throw new ProfileError(`${where}: not an object`);
    const layer = layerOf(f['layer'], where);
    let path: ByteName;
    if (typeof f['path'] === 'string') path = Buffer.from(f['path'], 'utf8').toString('latin1');
    else if (typeof f['pathBase64'] === 'string') path = Buffer.from(f['pathBase64'], 'base64').toString('latin1');
    else throw new ProfileError(`${where}: no "path"`);
    if (path === '' || path.length > PROFILE_LIMITS.pathBytes || path.includes('\0') || !isByteName(path)) throw new ProfileError(`${where}: not a path`);
    // File sizes are known only from the layer's tree: replay checks them there.
    return { layer, path, ranges: rangesOf(f['ranges'], where, Number.MAX_SAFE_INTEGER) };
  });
  let replayBytes = 0;
  const outBlobs = blobs.map((b: unknown, i): ProfileBlob => {
    const where = `blobs[${i}]`;
    if (!obj(b)) throw new ProfileError(`${where}: not an object`);
    const digest = layerOf(b['digest'], where);
    const how = b['servedAs'];
    if (typeof how !== 'string' || how.length > 200) throw new ProfileError(`${where}: "servedAs" is not a format name`);
    const ranges = rangesOf(b['ranges'], where, expect?.layers.get(digest) ?? Number.MAX_SAFE_INTEGER);
    for (const [s, e] of ranges) replayBytes += e - s;
    if (replayBytes > PROFILE_LIMITS.replayBytes) throw new ProfileError(`its blob ranges ask for more than ${PROFILE_LIMITS.replayBytes} bytes`);
    return { digest, servedAs: how, ranges };
  });
  return { image, recordedAt, windowMs, files: outFiles, blobs: outBlobs };
}

/** Bytes a list of ranges covers. */
export function rangeBytes(ranges: readonly Range[]): number {
  return ranges.reduce((n, [s, e]) => n + e - s, 0);
}
