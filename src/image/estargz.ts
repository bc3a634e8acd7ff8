import { createHash } from 'node:crypto';
import { promisify } from 'node:util';
import { createGunzip, gunzip } from 'node:zlib';
import type { Digest } from '../lib/digest.js';
import { AbortedError } from '../lib/errors.js';
import { LayerFormatError } from './errors.js';
import type { Layer, LayerDescriptor, LayerDeps } from './layer.js';
import { type TarEntry, normalisePath } from './tar-entry.js';
import { byteNameFromUtf8 } from '../lib/byte-name.js';
import { TarStreamParser } from './tar-stream.js';

const gunzipAsync = promisify(gunzip);

/** containerd's annotation for the digest of the uncompressed TOC JSON. */
export const TOC_DIGEST_ANNOTATION = 'containerd.io/snapshot/stargz/toc.digest';
export const PREFETCH_LANDMARK = '.prefetch.landmark';
export const NO_PREFETCH_LANDMARK = '.no.prefetch.landmark';
const FOOTER = 51;
const LEGACY_FOOTER = 47;
/** A TOC larger than this is refused (the format has no limit; memory does). */
const MAX_TOC = 64 << 20;

interface TocEntry {
  name: string;
  type: string;
  size?: number;
  modtime?: string;
  linkName?: string;
  mode?: number;
  uid?: number;
  gid?: number;
  devMajor?: number;
  devMinor?: number;
  xattrs?: Record<string, string>;
  offset?: number;
  chunkOffset?: number;
  chunkSize?: number;
  chunkDigest?: string;
}

interface Chunk {
  /** Compressed range of the chunk's own gzip member. */
  start: number;
  end: number;
  /** Where the chunk's bytes sit in the file. */
  fileOffset: number;
  size: number;
  digest: string | undefined;
}

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
 * An eStargz layer (stargz-snapshotter's estargz package, TOC format v1): the file list comes
 * from the TOC at the end of the blob, and each file's bytes from its own gzip members, so
 * reading one file fetches only its chunks. Every chunk is checked against its `chunkDigest`.
 */
export function openEStargzLayer(desc: LayerDescriptor, deps: LayerDeps, tocOffsetHint?: number): Layer {
  let toc: Promise<ReturnType<typeof buildFromToc>> | undefined;
  const readBlob = (offset: number, into: Uint8Array, signal?: AbortSignal): Promise<number> => deps.blobs.readAt(desc.digest, offset, into, signal);
  const fail = (why: string): LayerFormatError => new LayerFormatError(desc.digest, `eStargz: ${why}`);

  const load = async () => {
    let tocOffset = tocOffsetHint;
    if (tocOffset === undefined) {
      const tail = Buffer.alloc(Math.min(desc.size, FOOTER));
      await readBlob(desc.size - tail.length, tail);
      tocOffset = parseFooter(tail);
      if (tocOffset === undefined) throw fail('no eStargz footer');
    }
    if (tocOffset < 0 || tocOffset >= desc.size - LEGACY_FOOTER) throw fail(`TOC offset ${tocOffset} is outside the blob (${desc.size} bytes)`);
    const tocLen = desc.size - tocOffset;
    if (tocLen > MAX_TOC) throw fail(`TOC of ${tocLen} bytes is larger than ${MAX_TOC}`);
    const gz = Buffer.alloc(tocLen);
    await readBlob(tocOffset, gz);
    // The TOC member is a tar holding stargz.index.json; the footer that follows is an empty member.
    let tar: Buffer;
    try {
      tar = await gunzipAsync(gz, { maxOutputLength: MAX_TOC + 4096 } as never);
    } catch (e) {
      throw fail(`TOC is not valid gzip: ${(e as Error).message}`);
    }
    const parser = new TarStreamParser();
    parser.push(tar);
    const tocEntry = parser.entries.find((e) => e.path === 'stargz.index.json');
    if (!tocEntry) throw fail('TOC tar has no stargz.index.json');
    const json = tar.subarray(tocEntry.dataOffset, tocEntry.dataOffset + tocEntry.size);
    const want = desc.annotations?.[TOC_DIGEST_ANNOTATION];
    const actual = `sha256:${createHash('sha256').update(json).digest('hex')}`;
    if (want !== undefined && want !== actual) throw fail(`TOC digest ${actual} does not match the annotation ${want}`);
    if (want === undefined) deps.log.info({ layer: desc.digest }, 'eStargz layer without a TOC digest annotation: the TOC is not verified');
    let parsed: { version?: number; entries?: TocEntry[] };
    try {
      parsed = JSON.parse(json.toString('utf8')) as typeof parsed;
    } catch (e) {
      throw fail(`TOC is not JSON: ${(e as Error).message}`);
    }
    if (parsed.version !== 1 || !Array.isArray(parsed.entries)) throw fail(`unsupported TOC version ${JSON.stringify(parsed.version)}`);
    return buildFromToc(parsed.entries, tocOffset, desc.size, fail);
  };

  const getToc = () => {
    if (!toc) {
      toc = load();
      toc.catch(() => (toc = undefined));
    }
    return toc;
  };

  const readChunk = async (c: Chunk, path: string): Promise<Buffer> => {
    const gz = Buffer.alloc(c.end - c.start);
    const n = await readBlob(c.start, gz);
    let data: Buffer;
    try {
      data = await gunzipPrefix(gz.subarray(0, n), c.size);
    } catch (e) {
      throw fail(`chunk of ${path} at ${c.start} is not valid gzip: ${(e as Error).message}`);
    }
    if (data.length !== c.size) throw fail(`chunk of ${path} at ${c.start} is ${data.length} bytes, the TOC says ${c.size}`);
    if (c.digest) {
      const got = `sha256:${createHash('sha256').update(data).digest('hex')}`;
      if (got !== c.digest) throw fail(`chunk of ${path} at file offset ${c.fileOffset} hashes to ${got}, the TOC says ${c.digest}; refused`);
    }
    return data;
  };

  const spanKey = (c: Chunk): string => `${desc.digest}@${c.start}`;

  return {
    descriptor: desc,
    entries: async () => (await getToc()).entries,
    async read(entry, offset, into, signal) {
      const { chunks, broken } = await getToc();
      const why = broken.get(entry);
      if (why) throw fail(why);
      const list = chunks.get(entry) ?? [];
      const end = Math.min(entry.size, offset + into.length);
      const wanted = list.filter((c) => c.fileOffset < end && c.fileOffset + c.size > offset);
      const datas = await Promise.all(
        wanted.map(async (c) => {
          const hit = deps.spans.get(spanKey(c));
          if (hit) return hit;
          const d = await readChunk(c, entry.path);
          deps.spans.set(spanKey(c), d);
          return d;
        }),
      );
      if (signal?.aborted) throw new AbortedError({ digest: desc.digest });
      let copied = 0;
      wanted.forEach((c, i) => {
        const d = datas[i]!;
        const from = Math.max(offset, c.fileOffset) - c.fileOffset;
        const to = Math.min(end, c.fileOffset + c.size) - c.fileOffset;
        into.set(d.subarray(from, to), Math.max(offset, c.fileOffset) - offset);
        copied += to - from;
      });
      return copied;
    },
    async prefetchRange() {
      const { landmark } = await getToc();
      return landmark === undefined ? undefined : { start: 0, end: landmark };
    },
  };
}

function buildFromToc(list: TocEntry[], tocOffset: number, blobSize: number, fail: (why: string) => LayerFormatError) {
  const entries: TarEntry[] = [];
  const chunks = new Map<TarEntry, Chunk[]>();
  const byName = new Map<string, TarEntry>();
  const broken = new Map<TarEntry, string>();
  let landmark: number | undefined;
  // Chunk ends are the next non-zero offset in TOC order (estargz's nextOffset), or the TOC.
  const offsets = list.map((e) => e.offset ?? 0);
  const nextOffset: number[] = new Array(list.length);
  let next = tocOffset;
  for (let i = list.length - 1; i >= 0; i--) {
    nextOffset[i] = next;
    if (offsets[i]! > 0) next = offsets[i]!;
  }
  list.forEach((e, i) => {
    if (typeof e.name !== 'string' || typeof e.type !== 'string') throw fail(`TOC entry ${i} has no name or type`);
    const path = normalisePath(byteNameFromUtf8(e.name));
    if (e.type === 'chunk') {
      const owner = byName.get(path);
      if (!owner) throw fail(`chunk of unknown file ${e.name}`);
      addChunk(owner, e, nextOffset[i]!);
      return;
    }
    if (path === PREFETCH_LANDMARK || path === NO_PREFETCH_LANDMARK) {
      if (path === PREFETCH_LANDMARK) landmark = e.offset ?? 0;
      return;
    }
    const type = ({ reg: 'file', dir: 'dir', symlink: 'symlink', hardlink: 'hardlink', char: 'chardev', block: 'blockdev', fifo: 'fifo' } as const)[e.type as 'reg'];
    if (!type) throw fail(`TOC entry ${e.name} has unknown type ${JSON.stringify(e.type)}`);
    // TOC JSON holds names as UTF-8 text and xattr values as base64 bytes (estargz spec, "TOC").
    const xattrs = e.xattrs ? new Map(Object.entries(e.xattrs).map(([k, v]) => [byteNameFromUtf8(k), Buffer.from(v, 'base64')])) : undefined;
    const size = type === 'file' ? (e.size ?? 0) : 0;
    if (!Number.isSafeInteger(size) || size < 0) throw fail(`TOC entry ${e.name} has a bad size`);
    const entry: TarEntry = {
      path,
      type,
      mode: (e.mode ?? 0) & 0o7777,
      uid: e.uid ?? 0,
      gid: e.gid ?? 0,
      size,
      mtimeMs: e.modtime ? Date.parse(e.modtime) || 0 : 0,
      linkname: byteNameFromUtf8(e.linkName ?? ''),
      devmajor: e.devMajor ?? 0,
      devminor: e.devMinor ?? 0,
      xattrs,
      dataOffset: 0,
    };
    entries.push(entry);
    byName.set(path, entry);
    if (type === 'file' && size > 0) addChunk(entry, e, nextOffset[i]!);
  });
  function addChunk(owner: TarEntry, e: TocEntry, end: number): void {
    const fileOffset = e.chunkOffset ?? 0;
    const size = e.chunkSize || owner.size - fileOffset;
    const start = e.offset ?? 0;
    if (start <= 0 || start >= end || end > blobSize || size <= 0 || fileOffset + size > owner.size) {
      // Only this file is unreadable; the rest of the layer still lists and reads.
      broken.set(owner, `TOC entry ${e.name} points outside the blob (offset ${start}, chunk ${fileOffset}+${size})`);
      return;
    }
    const list = chunks.get(owner) ?? [];
    list.push({ start, end, fileOffset, size, digest: e.chunkDigest });
    chunks.set(owner, list);
  }
  return { entries, chunks, landmark, broken };
}

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
