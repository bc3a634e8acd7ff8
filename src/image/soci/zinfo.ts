import { Builder } from 'flatbuffers';
import type { Checkpoint } from '../gzip-index.js';
import { ZtocError } from './errors.js';
import { FbTable, guard } from './fb-table.js';

/**
 * The gzip "zinfo" blob carried in a zTOC's `checkpoints` (soci-snapshotter
 * ztoc/compression/gzip_zinfo.c, version 2): little-endian int32 checkpoint count, int64 span
 * size, then per checkpoint int64 compressed offset, int64 uncompressed offset, one byte of
 * bits, and always a full 32 KiB window (the output before the checkpoint, zero-padded in front
 * when less output precedes it in its gzip member — a valid deflate stream never reaches back
 * past its own start, so the padding is never read). Version 1 blobs stored one checkpoint
 * fewer (the first, assumed at compressed offset 10); a reader tells them apart by length.
 */
export const WINDOW = 32768;
const HEADER = 4 + 8;
const POINT = 8 + 8 + 1 + WINDOW;

export interface Zinfo {
  spanSize: number;
  checkpoints: Checkpoint[];
}

export function encodeGzipZinfo(z: Zinfo): Buffer {
  const out = Buffer.alloc(HEADER + POINT * z.checkpoints.length);
  out.writeInt32LE(z.checkpoints.length, 0);
  out.writeBigInt64LE(BigInt(z.spanSize), 4);
  let p = HEADER;
  for (const c of z.checkpoints) {
    if (c.window.length > WINDOW) throw new RangeError('a checkpoint window is at most 32 KiB');
    out.writeBigInt64LE(BigInt(c.in), p);
    out.writeBigInt64LE(BigInt(c.out), p + 8);
    out.writeUInt8(c.bits, p + 16);
    c.window.copy(out, p + 17 + WINDOW - c.window.length);
    p += POINT;
  }
  return out;
}

/** The blob's checkpoints, windows as views into `blob`; throws ZtocError when the length does not fit. */
export function decodeGzipZinfo(blob: Buffer): Zinfo {
  if (blob.length < HEADER) throw new ZtocError(`gzip zinfo of ${blob.length} bytes is shorter than its header`);
  const count = blob.readInt32LE(0);
  const spanSize = Number(blob.readBigInt64LE(4));
  if (count <= 0) throw new ZtocError(`gzip zinfo claims ${count} checkpoints`);
  let stored: number;
  if (HEADER + POINT * count === blob.length) stored = count;
  else if (HEADER + POINT * (count - 1) === blob.length) stored = count - 1; // version 1
  else throw new ZtocError(`gzip zinfo claims ${count} checkpoints but holds ${blob.length} bytes`);
  const checkpoints: Checkpoint[] = [];
  if (stored < count) checkpoints.push({ in: 10, out: 0, bits: 0, window: Buffer.alloc(0) });
  for (let i = 0, p = HEADER; i < stored; i++, p += POINT) {
    const cin = blob.readBigInt64LE(p);
    const cout = blob.readBigInt64LE(p + 8);
    if (cin < 0n || cout < 0n || cin > BigInt(Number.MAX_SAFE_INTEGER) || cout > BigInt(Number.MAX_SAFE_INTEGER)) {
      throw new ZtocError(`checkpoint ${i} has offsets out of range`);
    }
    checkpoints.push({ in: Number(cin), out: Number(cout), bits: blob[p + 16]!, window: blob.subarray(p + 17, p + 17 + WINDOW) });
  }
  return { spanSize, checkpoints };
}

// zinfo.fbs `table TarZinfo { version: int32; span_size: int64; size: int64 }`: an uncompressed
// layer needs no checkpoints, only fixed-size spans (tar_zinfo.go).
const TAR_ZINFO_VERSION = 2;

export function encodeTarZinfo(spanSize: number, size: number): Buffer {
  const b = new Builder(64);
  b.startObject(3);
  b.addFieldInt32(0, TAR_ZINFO_VERSION, 0);
  b.addFieldInt64(1, BigInt(spanSize), 0n);
  b.addFieldInt64(2, BigInt(size), 0n);
  b.finish(b.endObject());
  return Buffer.from(b.asUint8Array());
}

export function decodeTarZinfo(blob: Buffer): { spanSize: number; size: number } {
  const { spanSize, size } = guard(() => {
    const t = FbTable.root(blob);
    return { spanSize: t.int64(1), size: t.int64(2) };
  });
  if (spanSize <= 0 || size < 0) throw new ZtocError(`tar zinfo has span size ${spanSize} and size ${size}`);
  return { spanSize, size };
}

/**
 * Compressed bytes of span `i`, as SOCI digests them (gzip_zinfo.go Start/EndCompressedOffset):
 * from the checkpoint (one byte earlier when it starts mid-byte) to the next checkpoint's
 * offset, or to the end of the blob for the last span.
 */
export function spanRange(cps: readonly Checkpoint[], i: number, compressedSize: number): { start: number; end: number } {
  const cp = cps[i]!;
  const next = cps[i + 1];
  return { start: cp.bits ? cp.in - 1 : cp.in, end: next ? next.in : compressedSize };
}
