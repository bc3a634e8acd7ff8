/** What every checkpointed reader (gzip zran spans, zstd frames, SOCI zTOC spans) shares. */

/**
 * The span holding an uncompressed offset: the last checkpoint whose output offset is ≤ `offset`
 * (binary search; checkpoints are sorted by `out`, the first at 0). Shared by every checkpointed
 * reader: gzip zran spans, zstd frames and SOCI zTOC spans.
 */
export function spanIndexAt(checkpoints: readonly { readonly out: number }[], offset: number): number {
  let lo = 0;
  let hi = checkpoints.length - 1;
  while (lo < hi) {
    const mid = (lo + hi + 1) >> 1;
    if (checkpoints[mid]!.out <= offset) lo = mid;
    else hi = mid - 1;
  }
  return lo;
}

/**
 * Copies [offset, end) of the uncompressed stream into `into` from decoded pieces that cover it
 * in order (`starts[k]` is where `pieces[k]` begins). Returns the bytes copied.
 */
export function copyFromPieces(pieces: readonly Uint8Array[], starts: readonly number[], offset: number, end: number, into: Uint8Array): number {
  let copied = 0;
  pieces.forEach((data, k) => {
    const start = starts[k]!;
    const from = Math.max(offset, start) - start;
    const to = Math.min(end, start + data.length) - start;
    into.set(data.subarray(from, to), copied);
    copied += to - from;
  });
  return copied;
}
