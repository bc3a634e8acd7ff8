import { displayName } from '../lib/byte-name.js';
import { TarEntryUnreadableError } from './errors.js';
import { planSparseRead, storedOffsets } from './sparse.js';
import type { TarEntry } from './tar-entry.js';

/** Reads bytes of the uncompressed layer stream (a plain tar blob, or gzip through its index). */
export type StreamReader = (streamOffset: number, into: Uint8Array, signal?: AbortSignal) => Promise<number>;

const prefix = new WeakMap<TarEntry, number[]>();

/**
 * Fills `into` with the entry's bytes from logical `offset`: straight from the stream for a plain
 * file; for a sparse one, its stored segments from the stream and zeros for the holes. The one
 * function every tar-based layer format reads file bytes through. Returns the bytes filled
 * (short only at the end of the file).
 */
export async function readEntryBytes(entry: TarEntry, offset: number, into: Uint8Array, readStream: StreamReader, signal?: AbortSignal): Promise<number> {
  if (entry.problem) throw new TarEntryUnreadableError(displayName(entry.path), entry.problem);
  const len = Math.max(0, Math.min(into.length, entry.size - offset));
  if (len === 0) return 0;
  const out = into.subarray(0, len);
  if (!entry.sparse) return readFull(readStream, entry.dataOffset + offset, out, signal);
  let before = prefix.get(entry);
  if (!before) prefix.set(entry, (before = storedOffsets(entry.sparse)));
  for (const p of planSparseRead(entry.sparse, before, offset, len)) {
    const part = out.subarray(p.at, p.at + p.length);
    if (p.kind === 'hole') part.fill(0);
    else if ((await readFull(readStream, entry.dataOffset + p.stored, part, signal)) < part.length) {
      throw new TarEntryUnreadableError(displayName(entry.path), 'stored data of the sparse file ends early');
    }
  }
  return len;
}

async function readFull(readStream: StreamReader, at: number, into: Uint8Array, signal?: AbortSignal): Promise<number> {
  let done = 0;
  while (done < into.length) {
    const n = await readStream(at + done, into.subarray(done), signal);
    if (n <= 0) break;
    done += n;
  }
  return done;
}
