import { nativeZstd } from './native-zstd.js';

/** Output produced per native call while streaming: bounds a call's time on the event loop. */
const OUT_STEP = 256 * 1024;

/**
 * The first `size` bytes that `compressed` (one or more whole zstd frames, skippable frames
 * allowed) decodes to. A zstd:chunked chunk is its own frame(s), bounded by the TOC's offsets.
 * Throws on corrupt input; answers fewer bytes when the frames hold fewer.
 */
export function decodeZstdPrefix(compressed: Uint8Array, size: number): Buffer {
  const z = nativeZstd();
  const h = z.create();
  // Grown on demand: `size` may be a limit (a TOC) rather than the size expected (a chunk).
  let out = Buffer.allocUnsafe(Math.min(size, Math.max(64 * 1024, compressed.length * 4)));
  let inPos = 0;
  let produced = 0;
  while (produced < size) {
    if (produced === out.length) {
      const bigger = Buffer.allocUnsafe(Math.min(size, out.length * 2));
      out.copy(bigger, 0, 0, produced);
      out = bigger;
    }
    const [consumed, made] = z.decompress(h, compressed, inPos, compressed.length - inPos, out, produced, out.length - produced);
    inPos += consumed;
    produced += made;
    if (consumed === 0 && made === 0) break;
  }
  return out.subarray(0, produced);
}

/** Output between two yields to the event loop in `decodeZstdPrefixAsync` (~2 ms of decoding). */
const YIELD_EVERY = 1 << 20;

/**
 * `decodeZstdPrefix` for chunks and spans that may be large (a zstd:chunked file stored as one
 * chunk, an 8 MiB span): decodes at most YIELD_EVERY bytes per turn of the event loop, so FUSE
 * requests of other readers keep being answered meanwhile.
 */
export async function decodeZstdPrefixAsync(compressed: Uint8Array, size: number): Promise<Buffer> {
  const z = nativeZstd();
  const h = z.create();
  const out = Buffer.allocUnsafe(size);
  let inPos = 0;
  let produced = 0;
  while (produced < size) {
    const [consumed, made] = z.decompress(h, compressed, inPos, compressed.length - inPos, out, produced, Math.min(YIELD_EVERY, size - produced));
    inPos += consumed;
    produced += made;
    if (consumed === 0 && made === 0) break;
    if (produced < size) await new Promise<void>((resolve) => setImmediate(resolve));
  }
  return out.subarray(0, produced);
}

/** Where a frame starts: its compressed offset and the uncompressed offset of its first byte. */
export interface FrameStart {
  in: number;
  out: number;
}

/**
 * A zstd stream decoded piece by piece as its compressed bytes arrive (the local pass over a
 * plain tar+zstd layer). Reports each frame start, so that a multi-frame layer can be entered at
 * any of them later without decoding what comes before.
 */
export class ZstdStreamDecoder {
  private readonly z = nativeZstd();
  private readonly h = this.z.create();
  private readonly out = Buffer.allocUnsafe(OUT_STEP);
  /** Compressed bytes consumed so far. */
  consumed = 0;
  /** Uncompressed bytes produced so far. */
  produced = 0;
  /** True between frames (at the start and after each frame end). */
  atFrameBoundary = true;

  constructor(
    private readonly onOutput: (data: Buffer) => void,
    private readonly onFrameStart: (f: FrameStart) => void,
  ) {}

  /** Decodes `input` (the next compressed bytes) completely, output included. */
  push(input: Uint8Array): void {
    let pos = 0;
    let outputPending = false;
    while (pos < input.length || outputPending) {
      if (this.atFrameBoundary && pos < input.length) {
        this.onFrameStart({ in: this.consumed, out: this.produced });
        this.atFrameBoundary = false;
      }
      const [consumed, made, frameDone] = this.z.decompress(this.h, input, pos, input.length - pos, this.out, 0, this.out.length);
      pos += consumed;
      this.consumed += consumed;
      if (made > 0) {
        this.produced += made;
        this.onOutput(this.out.subarray(0, made));
      }
      if (frameDone) this.atFrameBoundary = true;
      // A full output buffer may hide more output; otherwise no progress means "needs input".
      outputPending = made === this.out.length;
      if (!outputPending && consumed === 0) break;
    }
  }
}
