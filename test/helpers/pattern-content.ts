import { createHash } from 'node:crypto';
import type { FileContent } from '../../src/fs/node.js';

const BLOCK = 1 << 20;

/** 1 MiB of sha256-counter bytes for `seed`. */
function block(seed: string): Buffer {
  const out = Buffer.alloc(BLOCK);
  for (let i = 0; i < BLOCK / 32; i++) createHash('sha256').update(`${seed}:${i}`).digest().copy(out, i * 32);
  return out;
}

/**
 * A large file with no repeating MiB, produced on the fly (no memory per byte): MiB k is the seed
 * block rotated by k × 7919 bytes. `bytes(offset, length)` gives the same bytes to a checker.
 */
export function patternContent(size: number, seed: string): FileContent & { bytes(offset: number, length: number): Buffer } {
  const b = block(seed);
  const fill = (offset: number, into: Uint8Array): number => {
    const n = Math.max(0, Math.min(into.length, size - offset));
    let done = 0;
    while (done < n) {
      const pos = offset + done;
      const k = Math.floor(pos / BLOCK);
      const inBlock = pos % BLOCK;
      const len = Math.min(n - done, BLOCK - inBlock);
      const start = (inBlock + k * 7919) % BLOCK;
      const first = Math.min(len, BLOCK - start);
      b.copy(into, done, start, start + first);
      if (first < len) b.copy(into, done + first, 0, len - first);
      done += len;
    }
    return n;
  };
  return {
    size,
    async read(offset, into, signal) {
      if (signal.aborted) throw new Error('aborted');
      return fill(offset, into);
    },
    bytes(offset, length) {
      const out = Buffer.alloc(length);
      return out.subarray(0, fill(offset, out));
    },
  };
}

export function sha256Of(c: { size: number; bytes(offset: number, length: number): Buffer }): string {
  const h = createHash('sha256');
  for (let off = 0; off < c.size; off += BLOCK) h.update(c.bytes(off, BLOCK));
  return h.digest('hex');
}
