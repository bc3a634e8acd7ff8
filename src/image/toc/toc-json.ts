import { type ByteName, byteNameFromUtf8 } from '../../lib/byte-name.js';

/**
 * One TOC entry, validated. The JSON is the CRFS TOC that eStargz (estargz/types.go `TOCEntry`)
 * and zstd:chunked (containers/storage `minimal.FileMetadata`) both write: names are UTF-8 JSON
 * text, turned into byte names here; xattr values are base64, turned into bytes here.
 */
export interface TocEntry {
  name: ByteName;
  type: 'reg' | 'dir' | 'symlink' | 'hardlink' | 'char' | 'block' | 'fifo' | 'chunk';
  size: number;
  modtimeMs: number;
  linkName: ByteName;
  mode: number;
  uid: number;
  gid: number;
  devMajor: number;
  devMinor: number;
  xattrs: Map<ByteName, Buffer> | undefined;
  /** Compressed offset of the entry's (first) chunk; 0 when it has no data. */
  offset: number;
  /** zstd:chunked: where that chunk's compressed bytes end; 0 when the format leaves it implicit (eStargz). */
  endOffset: number;
  chunkOffset: number;
  /** 0: the rest of the file. */
  chunkSize: number;
  chunkDigest: string | undefined;
  /** The whole file's sha256 (regular files; both formats write it). */
  digest: string | undefined;
  /** zstd:chunked `chunkType: "zeros"`: a hole, no compressed bytes. */
  zeros: boolean;
}

export class TocJsonError extends Error {}

const TYPES = new Set(['reg', 'dir', 'symlink', 'hardlink', 'char', 'block', 'fifo', 'chunk']);
const DIGEST = /^sha256:[0-9a-f]{64}$/;
const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;

/** Parses and validates TOC JSON (version 1). Throws `TocJsonError` naming the first bad field. */
export function parseTocJson(json: Buffer): TocEntry[] {
  let doc: unknown;
  try {
    doc = JSON.parse(json.toString('utf8'));
  } catch (e) {
    throw new TocJsonError(`TOC is not JSON: ${(e as Error).message}`);
  }
  if (!isObject(doc)) throw new TocJsonError('TOC is not a JSON object');
  if (doc.version !== 1) throw new TocJsonError(`unsupported TOC version ${JSON.stringify(doc.version)}`);
  if (!Array.isArray(doc.entries)) throw new TocJsonError('TOC has no entries array');
  return doc.entries.map((raw: unknown, i: number) => tocEntry(raw, i));
}

function tocEntry(raw: unknown, i: number): TocEntry {
  if (!isObject(raw)) throw new TocJsonError(`TOC entry ${i} is not an object`);
  const bad = (field: string, why: string): TocJsonError => new TocJsonError(`TOC entry ${i} (${JSON.stringify(raw.name)}): ${field} ${why}`);
  const str = (field: string): string => {
    const v = raw[field];
    if (v === undefined || v === null) return '';
    if (typeof v !== 'string') throw bad(field, 'is not a string');
    return v;
  };
  const int = (field: string): number => {
    const v = raw[field];
    if (v === undefined || v === null) return 0;
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) throw bad(field, `is not a non-negative integer: ${JSON.stringify(v)}`);
    return v;
  };
  const name = str('name');
  const type = str('type');
  if (name === '') throw bad('name', 'is missing');
  if (!TYPES.has(type)) throw bad('type', `is unknown: ${JSON.stringify(type)}`);
  const modtime = str('modtime');
  const modtimeMs = modtime === '' ? 0 : Date.parse(modtime);
  if (Number.isNaN(modtimeMs)) throw bad('modtime', `is not a time: ${JSON.stringify(modtime)}`);
  const chunkDigest = str('chunkDigest');
  if (chunkDigest !== '' && !DIGEST.test(chunkDigest)) throw bad('chunkDigest', `is not a sha256 digest: ${JSON.stringify(chunkDigest)}`);
  const digest = str('digest');
  if (digest !== '' && !DIGEST.test(digest)) throw bad('digest', `is not a sha256 digest: ${JSON.stringify(digest)}`);
  const chunkType = str('chunkType');
  if (chunkType !== '' && chunkType !== 'zeros') throw bad('chunkType', `is unknown: ${JSON.stringify(chunkType)}`);
  let xattrs: Map<ByteName, Buffer> | undefined;
  if (raw.xattrs !== undefined && raw.xattrs !== null) {
    if (!isObject(raw.xattrs)) throw bad('xattrs', 'is not an object');
    xattrs = new Map();
    for (const [k, v] of Object.entries(raw.xattrs)) {
      if (typeof v !== 'string' || !BASE64.test(v)) throw bad(`xattr ${JSON.stringify(k)}`, 'is not base64');
      xattrs.set(byteNameFromUtf8(k), Buffer.from(v, 'base64'));
    }
  }
  return {
    name: byteNameFromUtf8(name),
    type: type as TocEntry['type'],
    size: int('size'),
    modtimeMs,
    linkName: byteNameFromUtf8(str('linkName')),
    mode: int('mode'),
    uid: int('uid'),
    gid: int('gid'),
    devMajor: int('devMajor'),
    devMinor: int('devMinor'),
    xattrs,
    offset: int('offset'),
    endOffset: int('endOffset'),
    chunkOffset: int('chunkOffset'),
    chunkSize: int('chunkSize'),
    chunkDigest: chunkDigest === '' ? undefined : chunkDigest,
    digest: digest === '' ? undefined : digest,
    zeros: chunkType === 'zeros',
  };
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}
