/**
 * Sparse files: a map of the data segments of a file whose other bytes are holes (zeros). The
 * tar stream stores only the segments, back to back. This module is the pure mapping from a
 * logical file range to stored bytes and holes; the tar side (`tar-sparse.ts`) builds the maps.
 */

/** A data segment: `length` bytes at logical `offset`; its bytes follow the previous segment's in the stream. */
export interface SparseSegment {
  offset: number;
  length: number;
}

/** A piece of a read: copy `length` bytes from the stored data at `stored` (relative to the entry's data), or zeros. */
export type ReadPiece = { kind: 'data'; at: number; length: number; stored: number } | { kind: 'hole'; at: number; length: number };

/**
 * Checks a map against the file: segments in increasing order, not overlapping, inside the
 * logical size, and their bytes inside the stored data. Returns why not, or undefined.
 */
export function sparseMapProblem(map: readonly SparseSegment[], logicalSize: number, storedSize: number): string | undefined {
  let end = 0;
  let stored = 0;
  for (const s of map) {
    if (!Number.isSafeInteger(s.offset) || !Number.isSafeInteger(s.length) || s.offset < 0 || s.length < 0) return 'sparse map has a bad number';
    if (s.offset < end) return `sparse map segments overlap or go backwards at offset ${s.offset}`;
    if (s.offset + s.length > logicalSize) return `sparse map segment at ${s.offset}+${s.length} ends past the file size ${logicalSize}`;
    end = s.offset + s.length;
    stored += s.length;
  }
  if (stored > storedSize) return `sparse map needs ${stored} stored bytes, the entry has ${storedSize}`;
  return undefined;
}

/** Drops empty segments (GNU tar ends every map with one at the file size). */
export function compactMap(map: readonly SparseSegment[]): SparseSegment[] {
  return map.filter((s) => s.length > 0);
}

/** First segment whose end is past `offset` (binary search: maps of big files have many segments). */
function firstAfter(map: readonly SparseSegment[], offset: number): number {
  let lo = 0;
  let hi = map.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (map[mid]!.offset + map[mid]!.length <= offset) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/**
 * Splits the logical range [offset, offset+length) into stored pieces and holes, in order, with
 * `at` relative to `offset`. `storedBefore[i]` is the number of stored bytes before segment i
 * (see `storedOffsets`), so a read costs O(log n + pieces).
 */
export function planSparseRead(map: readonly SparseSegment[], storedBefore: readonly number[], offset: number, length: number): ReadPiece[] {
  const pieces: ReadPiece[] = [];
  const end = offset + length;
  let pos = offset;
  for (let i = firstAfter(map, offset); i < map.length && pos < end; i++) {
    const s = map[i]!;
    if (s.offset >= end) break;
    if (s.offset > pos) {
      pieces.push({ kind: 'hole', at: pos - offset, length: s.offset - pos });
      pos = s.offset;
    }
    const n = Math.min(end, s.offset + s.length) - pos;
    pieces.push({ kind: 'data', at: pos - offset, length: n, stored: storedBefore[i]! + (pos - s.offset) });
    pos += n;
  }
  if (pos < end) pieces.push({ kind: 'hole', at: pos - offset, length: end - pos });
  return pieces;
}

/** Stored bytes before each segment. */
export function storedOffsets(map: readonly SparseSegment[]): number[] {
  const out: number[] = [];
  let acc = 0;
  for (const s of map) {
    out.push(acc);
    acc += s.length;
  }
  return out;
}
