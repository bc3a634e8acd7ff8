import type { Digest } from '../../lib/digest.js';
import { LayerFormatError } from '../errors.js';
import type { Checkpoint } from '../gzip-index.js';
import type { DerivedStore } from '../layer.js';
import { PIECE, isStoredSpan, pieceKey } from './zstd-spans.js';
import { ZstdStreamDecoder } from './zstd-decode.js';

const READ_STEP = 4 << 20;
/** Input per decoder push: keeps the decoded bytes waiting for the cache small. */
const PUSH_STEP = 256 * 1024;

export interface ZstdIndex {
  checkpoints: Checkpoint[];
  uncompressedSize: number;
}

export interface ZstdIndexOptions {
  span: number;
  maxOutput: number;
  /** Where the decoded bytes of long spans go; without it they are decoded again when read. */
  derived: DerivedStore | undefined;
  onProgress?: (compressedDone: number) => void;
}

/**
 * Decodes a plain tar+zstd layer once, as a stream: hands every decoded byte to `onTar` (the tar
 * index), records frame starts as checkpoints, and stores the decoded bytes of spans too long to
 * decode again (see zstd-spans.ts). A truncated or garbage stream is a LayerFormatError.
 */
export async function buildZstdIndex(digest: Digest, compressedSize: number, readBlob: (offset: number, into: Uint8Array) => Promise<number>, onTar: (chunk: Buffer) => void, opts: ZstdIndexOptions): Promise<ZstdIndex> {
  const fail = (why: string): LayerFormatError => new LayerFormatError(digest, `zstd: ${why}`);
  const checkpoints: Checkpoint[] = [];
  // The current span's decoded bytes: whole pieces, and the piece being filled.
  let pieces: Buffer[] = [];
  let piece = Buffer.allocUnsafe(PIECE);
  let filled = 0;
  let storing = false;
  let stored = 0;
  const puts: Promise<void>[] = [];
  const put = (data: Buffer): void => {
    const span = checkpoints.length - 1;
    const key = pieceKey(digest, span, stored++);
    if (opts.derived) puts.push(opts.derived.put(key, data));
  };
  const endSpan = (): void => {
    if (storing && filled > 0) put(Buffer.from(piece.subarray(0, filled)));
    pieces = [];
    filled = 0;
    storing = false;
    stored = 0;
  };
  const decoder = new ZstdStreamDecoder(
    (out) => {
      if (decoder.produced > opts.maxOutput) throw fail(`expands beyond ${opts.maxOutput} bytes; refusing (zstd bomb?)`);
      onTar(out);
      for (let at = 0; at < out.length; ) {
        const n = Math.min(out.length - at, PIECE - filled);
        out.copy(piece, filled, at, at + n);
        filled += n;
        at += n;
        if (filled === PIECE) {
          if (storing) put(piece);
          else pieces.push(piece);
          piece = Buffer.allocUnsafe(PIECE);
          filled = 0;
        }
      }
      if (!storing && isStoredSpan(decoder.produced - checkpoints[checkpoints.length - 1]!.out)) {
        storing = true;
        for (const p of pieces) put(p);
        pieces = [];
      }
      // Only spans that may still become long are held: at most STORED_SPAN bytes.
    },
    (f) => {
      const last = checkpoints[checkpoints.length - 1];
      if (last && f.out - last.out < opts.span) return;
      if (last) endSpan();
      checkpoints.push({ in: f.in, bits: 0, out: f.out, window: Buffer.alloc(0) });
    },
  );
  const input = Buffer.allocUnsafe(READ_STEP);
  for (let at = 0; at < compressedSize; ) {
    const n = await readBlob(at, input.subarray(0, Math.min(READ_STEP, compressedSize - at)));
    if (n === 0) throw fail(`blob ends at ${at} of ${compressedSize} bytes`);
    for (let p = 0; p < n; p += PUSH_STEP) {
      try {
        decoder.push(input.subarray(p, Math.min(n, p + PUSH_STEP)));
      } catch (e) {
        if (e instanceof LayerFormatError) throw e;
        throw fail(`corrupt data near compressed offset ${at + p}: ${(e as Error).message}`);
      }
      await Promise.all(puts.splice(0));
    }
    at += n;
    opts.onProgress?.(at);
  }
  if (!decoder.atFrameBoundary) throw fail('the stream ends inside a frame (truncated)');
  if (checkpoints.length === 0) throw fail('no zstd frame');
  endSpan();
  await Promise.all(puts.splice(0));
  return { checkpoints, uncompressedSize: decoder.produced };
}
