import type { ReadBlob } from '../gzip-reader.js';

/**
 * Size of the parts a span or a zTOC is fetched in, at the same time. Registries and CDNs cap
 * each connection (the WAN bench: 40 MiB/s and 20 ms RTT per connection), so a 4 MiB span read
 * as one range took 126 ms and as four 1 MiB ranges 78 ms (#14 profile); 512 KiB parts took
 * another ~18 ms off a fresh SOCI mount's first read (6 mounts each way). Parts start at
 * multiples of this size in the blob, so they line up with the chunk cache's blocks.
 */
export const PART_BYTES = 512 << 10;

/**
 * `readBlob(start, into)` as parallel reads of at most PART_BYTES each. Returns the bytes read
 * from `start` without a gap: a part that comes back short ends the count there (end of blob).
 */
export async function readInParts(readBlob: ReadBlob, start: number, into: Buffer, signal?: AbortSignal): Promise<number> {
  const end = start + into.length;
  const parts: { at: number; len: number }[] = [];
  for (let at = start; at < end; ) {
    const next = Math.min(end, (Math.floor(at / PART_BYTES) + 1) * PART_BYTES);
    parts.push({ at, len: next - at });
    at = next;
  }
  const got = await Promise.all(parts.map((p) => readBlob(p.at, into.subarray(p.at - start, p.at - start + p.len), signal)));
  let n = 0;
  for (let i = 0; i < parts.length; i++) {
    n += got[i]!;
    if (got[i]! < parts[i]!.len) break;
  }
  return n;
}
