/**
 * One segment of a blob on disk: a sparse file holding `segmentBlocks` blocks of the blob at
 * their own offsets, after a fixed header that records which blocks are present and a crc32 of
 * each (mountpoint-s3's disk cache keeps a checksum with every block; a mismatch is a miss).
 *
 *   0  magic "RGFB"  4  version (1)  5  flags (bit 0: the whole blob hashed to its digest)
 *   8  block size (u32)  12  blocks per segment (u32)  16  segment index (u32)
 *   24 blob size (u64)
 *   32 present: one byte per block (1 = written)
 *   32 + n: crc32 per block (u32 LE)
 *   DATA_OFFSET: the blocks, block i at DATA_OFFSET + i * blockSize (holes where absent)
 *
 * Data is written before the header that marks it present, so a process killed in between
 * leaves a block that is absent, never one that is wrong; after a power loss the order is not
 * guaranteed, which is why a block found on disk at start is verified on its first read.
 */
export const DATA_OFFSET = 8192;
const PREAMBLE = 32;
const MAGIC = 0x42464752; // "RGFB" little-endian
const VERSION = 1;

export interface SegmentGeometry {
  blockSize: number;
  segmentBlocks: number;
}

/** The most blocks a segment header can describe. */
export const MAX_SEGMENT_BLOCKS = Math.floor((DATA_OFFSET - PREAMBLE) / 5);

export function headerSize(g: SegmentGeometry): number {
  return PREAMBLE + 5 * g.segmentBlocks;
}

export interface SegmentHeader {
  index: number;
  blobSize: number;
  verified: boolean;
  present: Uint8Array;
  crcs: Uint32Array;
}

export function encodeHeader(g: SegmentGeometry, h: SegmentHeader): Buffer {
  const b = Buffer.alloc(headerSize(g));
  b.writeUInt32LE(MAGIC, 0);
  b.writeUInt8(VERSION, 4);
  b.writeUInt8(h.verified ? 1 : 0, 5);
  b.writeUInt32LE(g.blockSize, 8);
  b.writeUInt32LE(g.segmentBlocks, 12);
  b.writeUInt32LE(h.index, 16);
  b.writeBigUInt64LE(BigInt(h.blobSize), 24);
  for (let i = 0; i < g.segmentBlocks; i++) {
    // In memory a block may be "present, not yet re-verified" (2); on disk it is just present.
    b[PREAMBLE + i] = h.present[i] ? 1 : 0;
    b.writeUInt32LE(h.crcs[i]!, PREAMBLE + g.segmentBlocks + 4 * i);
  }
  return b;
}

/** The header of a segment file, or why it cannot be used with this geometry. */
export function decodeHeader(g: SegmentGeometry, b: Buffer): SegmentHeader | { invalid: string } {
  if (b.length < headerSize(g)) return { invalid: `short header (${b.length} bytes)` };
  if (b.readUInt32LE(0) !== MAGIC) return { invalid: 'bad magic' };
  if (b.readUInt8(4) !== VERSION) return { invalid: `unknown version ${b.readUInt8(4)}` };
  if (b.readUInt32LE(8) !== g.blockSize || b.readUInt32LE(12) !== g.segmentBlocks) return { invalid: 'written with another block geometry' };
  const present = new Uint8Array(g.segmentBlocks);
  const crcs = new Uint32Array(g.segmentBlocks);
  for (let i = 0; i < g.segmentBlocks; i++) {
    present[i] = b[PREAMBLE + i] === 1 ? 1 : 0;
    crcs[i] = b.readUInt32LE(PREAMBLE + g.segmentBlocks + 4 * i);
  }
  return { index: b.readUInt32LE(16), blobSize: Number(b.readBigUInt64LE(24)), verified: (b.readUInt8(5) & 1) === 1, present, crcs };
}
