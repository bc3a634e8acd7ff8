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
