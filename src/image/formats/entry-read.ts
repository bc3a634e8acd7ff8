import { readEntryBytes as readTarEntryBytes } from '../entry-bytes.js';
import type { TarEntry } from '../tar-entry.js';

/** A layer's uncompressed tar stream with random access (plain tar, gzip checkpoints, zstd frames). */
export interface TarStreamReader {
  read(offset: number, into: Uint8Array, signal?: AbortSignal): Promise<number>;
}

/**
 * The one place where an entry's bytes are read from the uncompressed tar stream, whatever the
 * compression: the entry-relative offset becomes stream offsets in entry-bytes.ts (sparse files
 * map to stored segments and holes there, #11), and nowhere else.
 */
export function readEntryBytes(entry: TarEntry, offset: number, into: Uint8Array, stream: TarStreamReader, signal?: AbortSignal): Promise<number> {
  return readTarEntryBytes(entry, offset, into, (at, buf, sig) => stream.read(at, buf, sig), signal);
}
