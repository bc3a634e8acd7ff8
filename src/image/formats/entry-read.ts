import type { TarEntry } from '../tar-entry.js';

/** A layer's uncompressed tar stream with random access (plain tar, gzip checkpoints, zstd frames). */
export interface TarStreamReader {
  read(offset: number, into: Uint8Array, signal?: AbortSignal): Promise<number>;
}

/**
 * The one place where an entry's bytes are read from the uncompressed tar stream, whatever the
 * compression: the entry-relative offset becomes a stream offset here (and nowhere else), so a
 * file whose bytes are not one contiguous run (PAX sparse files, #11) is mapped in this function.
 */
export function readEntryBytes(entry: TarEntry, offset: number, into: Uint8Array, stream: TarStreamReader, signal?: AbortSignal): Promise<number> {
  const len = Math.max(0, Math.min(into.length, entry.size - offset));
  if (len === 0) return Promise.resolve(0);
  return stream.read(entry.dataOffset + offset, into.subarray(0, len), signal);
}
