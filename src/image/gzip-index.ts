import { crc32 } from 'node:zlib';
import type { Digest } from '../lib/digest.js';
import { LayerFormatError } from './errors.js';
import { nativeInflate } from './native-inflate.js';

/**
 * A place where inflation can restart (zlib's examples/zran.c): the compressed offset of the next
 * byte, how many bits of the byte before it still belong to the stream, the uncompressed offset,
 * and the 32 KiB of output before it (the deflate window; empty at a gzip member start).
 */
export interface Checkpoint {
  in: number;
  bits: number;
  out: number;
  window: Buffer;
}

export interface GzipIndex {
  checkpoints: Checkpoint[];
  compressedSize: number;
  uncompressedSize: number;
}

const WINDOW = 32 * 1024;
const READ_STEP = 4 << 20;
const OUT_STEP = 256 * 1024;

export type ReadCompressed = (offset: number, into: Uint8Array) => Promise<number>;

/** Length of a gzip member header (RFC 1952 §2.3) at `b[0]`, or throws. */
function gzipHeaderLength(b: Buffer, digest: string): number {
  if (b.length < 10 || b[0] !== 0x1f || b[1] !== 0x8b) throw new LayerFormatError(digest, 'not gzip data (bad magic)');
  if (b[2] !== 8) throw new LayerFormatError(digest, `gzip compression method ${b[2]} is not deflate`);
  const flg = b[3]!;
  let p = 10;
  if (flg & 4) {
    if (b.length < p + 2) throw new LayerFormatError(digest, 'truncated gzip header');
    p += 2 + b.readUInt16LE(p);
  }
  for (const bit of [8, 16]) {
    if (flg & bit) {
      const z = b.indexOf(0, p);
      if (z < 0) throw new LayerFormatError(digest, 'truncated gzip header');
      p = z + 1;
    }
  }
  if (flg & 2) p += 2;
  if (p > b.length) throw new LayerFormatError(digest, 'truncated gzip header');
  return p;
}

/**
 * Streams a gzip layer once, handing every uncompressed byte to `onOutput` (the tar parser) and
 * recording a checkpoint at a deflate block boundary about every `span` bytes of output, plus one
 * at each member start. Each member's CRC-32 and length are checked.
 */
export async function buildGzipIndex(
  digest: Digest,
  compressedSize: number,
  read: ReadCompressed,
  onOutput: (chunk: Uint8Array, outOffset: number) => void,
  opts: { span: number; onProgress?: (compressedDone: number) => void; maxOutput?: number },
): Promise<GzipIndex> {
  const z = nativeInflate();
  const checkpoints: Checkpoint[] = [];
  const out = Buffer.allocUnsafe(OUT_STEP);
  let tail = Buffer.alloc(0); // last ≤32 KiB of output
  let input = Buffer.alloc(0);
  let inputAt = 0; // compressed offset of input[0]
  let inPos = 0; // bytes of `input` consumed
  let totalOut = 0;
  let lastPoint = -Infinity;
  const maxOutput = opts.maxOutput ?? Number.MAX_SAFE_INTEGER;

  const refill = async (need: number): Promise<boolean> => {
    // Keep the unconsumed part and append the next read.
    const rest = input.subarray(inPos);
    const at = inputAt + inPos;
    if (at + rest.length >= compressedSize) return rest.length >= need;
    const next = Buffer.allocUnsafe(Math.min(READ_STEP, compressedSize - at - rest.length));
    const n = await read(at + rest.length, next);
    if (n === 0) return rest.length >= need;
    input = Buffer.concat([rest, next.subarray(0, n)]);
    inputAt = at;
    inPos = 0;
    opts.onProgress?.(inputAt + input.length);
    return true;
  };

  for (let member = 0; ; member++) {
    // Find the next member (or the end: trailing zero padding is allowed after the last one).
    while (input.length - inPos < 18) if (!(await refill(18))) break;
    const avail = input.length - inPos;
    if (member > 0 && (avail === 0 || input.subarray(inPos).every((b) => b === 0))) break;
    if (avail < 18) throw new LayerFormatError(digest, `gzip stream truncated at byte ${inputAt + inPos}`);
    let hdr: number;
    for (;;) {
      try {
        hdr = gzipHeaderLength(input.subarray(inPos), digest);
        break;
      } catch (e) {
        if (!(await refill(input.length - inPos + 1)) || input.length - inPos > 1 << 20) throw e;
      }
    }
    inPos += hdr;
    const h = z.create();
    let crc = 0;
    let memberOut = 0;
    try {
      checkpoints.push({ in: inputAt + inPos, bits: 0, out: totalOut, window: Buffer.alloc(0) });
      lastPoint = totalOut;
      tail = Buffer.alloc(0);
      for (;;) {
        if (inPos >= input.length && !(await refill(1))) throw new LayerFormatError(digest, `gzip stream truncated at byte ${inputAt + inPos}`);
        const [consumed, produced, dataType, status] = z.inflate(h, input, inPos, input.length - inPos, out, 0, out.length, true);
        inPos += consumed;
        if (status === -3) throw new LayerFormatError(digest, `corrupt deflate data near compressed byte ${inputAt + inPos}`);
        if (produced > 0) {
          const chunk = out.subarray(0, produced);
          crc = crc32(chunk, crc);
          onOutput(chunk, totalOut);
          totalOut += produced;
          memberOut += produced;
          if (totalOut > maxOutput) throw new LayerFormatError(digest, `expands beyond ${maxOutput} bytes; refusing (gzip bomb?)`);
          tail = produced >= WINDOW ? Buffer.from(chunk.subarray(produced - WINDOW)) : Buffer.concat([tail, chunk]).subarray(-WINDOW);
        }
        if (status === 1) break;
        if (status === -5 && consumed === 0 && produced === 0 && !(await refill(input.length - inPos + 1))) {
          throw new LayerFormatError(digest, `gzip stream truncated at byte ${inputAt + inPos}`);
        }
        // data_type: bit 7 = at a block boundary, bit 6 = that was the last block, low 3 = unused bits.
        if ((dataType & 128) !== 0 && (dataType & 64) === 0 && totalOut - lastPoint >= opts.span) {
          checkpoints.push({ in: inputAt + inPos, bits: dataType & 7, out: totalOut, window: Buffer.from(tail) });
          lastPoint = totalOut;
        }
      }
    } finally {
      z.end(h);
    }
    while (input.length - inPos < 8) if (!(await refill(8))) throw new LayerFormatError(digest, 'gzip trailer truncated');
    const wantCrc = input.readUInt32LE(inPos);
    const wantLen = input.readUInt32LE(inPos + 4);
    inPos += 8;
    if (wantCrc !== crc >>> 0 || wantLen !== memberOut % 2 ** 32) throw new LayerFormatError(digest, 'gzip CRC or length mismatch: the data is corrupt');
  }
  return { checkpoints, compressedSize, uncompressedSize: totalOut };
}
