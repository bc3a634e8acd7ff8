import { test } from 'node:test';
import assert from 'node:assert/strict';
import { PART_BYTES, readInParts } from '../../src/image/soci/read-in-parts.js';

/** A blob of `size` bytes whose byte i is i mod 251, read through a recorder of the calls. */
function blob(size: number): { calls: [number, number][]; read: (o: number, into: Uint8Array) => Promise<number> } {
  const calls: [number, number][] = [];
  return {
    calls,
    read: async (o, into) => {
      calls.push([o, into.length]);
      const n = Math.max(0, Math.min(into.length, size - o));
      for (let i = 0; i < n; i++) into[i] = (o + i) % 251;
      return n;
    },
  };
}

test('readInParts: 3.5 parts (512 KiB each) from offset 1000 → 4 parallel reads cut at the part marks, bytes exact', async () => {
  const b = blob(8 << 20);
  const into = Buffer.alloc(3.5 * PART_BYTES);
  const n = await readInParts(b.read, 1000, into);
  assert.equal(n, into.length);
  assert.deepEqual(b.calls, [[1000, PART_BYTES - 1000], [PART_BYTES, PART_BYTES], [2 * PART_BYTES, PART_BYTES], [3 * PART_BYTES, 0.5 * PART_BYTES + 1000]]);
  for (let i = 0; i < into.length; i += 4099) assert.equal(into[i], (1000 + i) % 251);
});

test('readInParts: a blob that ends inside the second part → the count stops at its end (1.25 parts of 3 asked, 3 reads)', async () => {
  const b = blob(1.25 * PART_BYTES);
  const n = await readInParts(b.read, 0, Buffer.alloc(3 * PART_BYTES));
  assert.equal(n, 1.25 * PART_BYTES);
  assert.equal(b.calls.length, 3);
});
