import { type Digest, digestAlgorithm, digestHex } from '../../lib/digest.js';

/**
 * How a plain tar+zstd layer is cut for random access. A zstd frame cannot be entered in the
 * middle, so the checkpoints are frame starts (at least `span` bytes of output apart). A span
 * longer than STORED_SPAN (a single-frame layer is one span) would cost a decode from its start
 * on every cold read: its decoded bytes are kept instead, in PIECE-sized pieces in the chunk
 * cache under keys derived from the layer digest, written during the first pass.
 */
export const STORED_SPAN = 8 << 20;
export const PIECE = 4 << 20;

/** Whether span bytes are kept as pieces; the builder and the reader must agree. */
export function isStoredSpan(length: number): boolean {
  return length > STORED_SPAN;
}

/** Cache key of piece `k` of span `span` (the format version and piece size are in the key). */
export function pieceKey(digest: Digest, span: number, k: number): string {
  return `${digestAlgorithm(digest)}-${digestHex(digest)}-zstd1-p${PIECE}-s${span}-${k}`;
}
