import type { ByteName } from '../../lib/byte-name.js';
import { type TarEntry, normalisePath } from '../tar-entry.js';
import type { TocEntry } from './toc-json.js';

/** eStargz landmarks (estargz/types.go): files before `.prefetch.landmark` are worth prefetching. */
export const PREFETCH_LANDMARK = '.prefetch.landmark';
export const NO_PREFETCH_LANDMARK = '.no.prefetch.landmark';

export interface TocChunk {
  /** Compressed range of the chunk's own gzip member(s) / zstd frame(s); empty for a hole. */
  start: number;
  end: number;
  /** Where the chunk's bytes sit in the file. */
  fileOffset: number;
  size: number;
  digest: string | undefined;
  /** A run of zero bytes with nothing stored (zstd:chunked `chunkType: "zeros"`). */
  zeros: boolean;
}

export interface TocTree {
  entries: TarEntry[];
  chunks: Map<TarEntry, TocChunk[]>;
  /** Files the TOC describes wrongly: they list, and read EIO with this reason. */
  broken: Map<TarEntry, string>;
  /** Compressed offset of the prefetch landmark, if any. */
  landmark: number | undefined;
}

const TYPE = { reg: 'file', dir: 'dir', symlink: 'symlink', hardlink: 'hardlink', char: 'chardev', block: 'blockdev', fifo: 'fifo' } as const;

/**
 * The file list and each file's chunks from a validated TOC. A chunk's compressed range ends at
 * the file's `endOffset` (zstd:chunked) or the next non-zero offset in TOC order, or the TOC
 * (estargz's nextOffset). A chunk that points outside the blob breaks only its file.
 */
export function buildTocTree(list: TocEntry[], tocOffset: number, blobSize: number, fail: (why: string) => Error): TocTree {
  const entries: TarEntry[] = [];
  const chunks = new Map<TarEntry, TocChunk[]>();
  const byName = new Map<ByteName, TarEntry>();
  const broken = new Map<TarEntry, string>();
  let landmark: number | undefined;
  const nextOffset: number[] = new Array(list.length);
  let next = tocOffset;
  for (let i = list.length - 1; i >= 0; i--) {
    nextOffset[i] = next;
    if (list[i]!.offset > 0) next = list[i]!.offset;
  }
  /** zstd:chunked's `endOffset` of a file: where the last of its chunks ends. */
  const fileEnd = new Map<TarEntry, number>();
  const addChunk = (owner: TarEntry, e: TocEntry, i: number): void => {
    const fileOffset = e.chunkOffset;
    const size = e.chunkSize || owner.size - fileOffset;
    const start = e.offset;
    // The file's endOffset bounds all its chunks; each chunk ends where the next entry's data starts.
    const bound = fileEnd.get(owner);
    const end = bound !== undefined && bound > start ? Math.min(bound, nextOffset[i]!) : nextOffset[i]!;
    // A chunk that is the whole file is pinned by the file's own digest when it has no chunkDigest.
    const digest = e.chunkDigest ?? (e.type === 'reg' && fileOffset === 0 && size === owner.size ? e.digest : undefined);
    const stored = !e.zeros;
    if (size <= 0 || fileOffset + size > owner.size || (stored && (start <= 0 || start >= end || end > blobSize))) {
      broken.set(owner, `TOC entry ${JSON.stringify(e.name)} points outside the blob (offset ${start}, chunk ${fileOffset}+${size})`);
      return;
    }
    const list = chunks.get(owner) ?? [];
    list.push({ start: stored ? start : 0, end: stored ? end : 0, fileOffset, size, digest, zeros: e.zeros });
    chunks.set(owner, list);
  };
  list.forEach((e, i) => {
    const path = normalisePath(e.name);
    if (e.type === 'chunk') {
      const owner = byName.get(path);
      if (!owner) throw fail(`chunk of unknown file ${JSON.stringify(e.name)}`);
      addChunk(owner, e, i);
      return;
    }
    if (path === PREFETCH_LANDMARK || path === NO_PREFETCH_LANDMARK) {
      if (path === PREFETCH_LANDMARK) landmark = e.offset;
      return;
    }
    const type = TYPE[e.type];
    const entry: TarEntry = {
      path,
      type,
      mode: e.mode & 0o7777,
      uid: e.uid,
      gid: e.gid,
      size: type === 'file' ? e.size : 0,
      mtimeMs: e.modtimeMs,
      linkname: e.linkName,
      devmajor: e.devMajor,
      devminor: e.devMinor,
      xattrs: e.xattrs && e.xattrs.size > 0 ? e.xattrs : undefined,
      dataOffset: 0,
    };
    entries.push(entry);
    byName.set(path, entry);
    if (e.endOffset > 0) fileEnd.set(entry, e.endOffset);
    if (type === 'file' && entry.size > 0) addChunk(entry, e, i);
  });
  return { entries, chunks, broken, landmark };
}

/** TarEntry carries xattr values as byte strings (one char per byte) until it takes Buffers (#11). */
