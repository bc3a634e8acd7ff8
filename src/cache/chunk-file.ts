import { crc32 } from 'node:zlib';

/**
 * On-disk chunk format: a 16-byte header, then the bytes.
 *   0  magic "RGFC"   4  version (1)   5-7  reserved
 *   8  length (u32 LE)   12  crc32 of the bytes (u32 LE)
 * mountpoint-s3's disk cache does the same: a checksum with every block, a mismatch is a miss.
 */
export const HEADER_SIZE = 16;
const MAGIC = 0x43464752; // "RGFC" little-endian
const VERSION = 1;

export function encodeChunk(data: Uint8Array): Buffer[] {
  const h = Buffer.alloc(HEADER_SIZE);
  h.writeUInt32LE(MAGIC, 0);
  h.writeUInt8(VERSION, 4);
  h.writeUInt32LE(data.length, 8);
  h.writeUInt32LE(crc32(data), 12);
  return [h, Buffer.from(data.buffer, data.byteOffset, data.length)];
}

/** The payload of a chunk file, or a reason it cannot be trusted. */
export function decodeChunk(file: Buffer): { data: Buffer } | { corrupt: string } {
  if (file.length < HEADER_SIZE) return { corrupt: `short header (${file.length} bytes)` };
  if (file.readUInt32LE(0) !== MAGIC) return { corrupt: 'bad magic' };
  if (file.readUInt8(4) !== VERSION) return { corrupt: `unknown version ${file.readUInt8(4)}` };
  const len = file.readUInt32LE(8);
  if (file.length !== HEADER_SIZE + len) return { corrupt: `length ${file.length - HEADER_SIZE} != header ${len}` };
  const data = file.subarray(HEADER_SIZE);
  if (crc32(data) !== file.readUInt32LE(12)) return { corrupt: 'checksum mismatch' };
  return { data };
}

/** Space a file of this payload takes on disk (4 KiB blocks), which is what the limit bounds. */
export function diskSize(payload: number): number {
  return Math.ceil((HEADER_SIZE + payload) / 4096) * 4096;
}
