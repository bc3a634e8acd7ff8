import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { gzipSync } from 'node:zlib';
import { PASS_WINDOW, localPassFormat } from '../../src/image/formats/indexed.js';
import type { LayerDeps } from '../../src/image/layer.js';
import { sha256Digest } from '../../src/lib/hash.js';
import { type Digest, parseDigest } from '../../src/lib/digest.js';
import { silentLogger } from '../../src/lib/logger.js';
import { archive, member } from '../helpers/tar-bytes.js';

/** A layer of 3 files (two of incompressible bytes), gzip: about 40 MB compressed. */
function layer(): { gz: Buffer; files: Buffer[] } {
  const files = [randomBytes(20 << 20), Buffer.from('hello\n'), randomBytes(20 << 20)];
  const tar = archive(...files.map((f, i) => member({ name: `f${i}`, size: f.length }, f)));
  return { gz: gzipSync(tar, { level: 1 }), files };
}

/** Blob reads straight from memory, recording what was asked ahead and what was read. */
function blobs(gz: Buffer, withPrefetch: boolean) {
  const reads: [number, number][] = [];
  const ahead: [number, number, boolean][] = [];
  let readTo = 0;
  let maxLead = 0;
  const reader = {
    size: async () => gz.length,
    readAt: async (_d: Digest, offset: number, into: Uint8Array) => {
      reads.push([offset, into.length]);
      const n = Math.min(into.length, gz.length - offset);
      into.set(gz.subarray(offset, offset + n));
      readTo = Math.max(readTo, offset + n);
      return n;
    },
    ...(withPrefetch
      ? {
          prefetch: async (_d: Digest, offset: number, length: number, size: number, near?: boolean) => {
            assert.equal(size, gz.length);
            ahead.push([offset, length, near ?? false]);
            maxLead = Math.max(maxLead, offset + length - readTo);
          },
        }
      : {}),
  };
  return { reader, reads, ahead, lead: () => maxLead };
}

function deps(reader: LayerDeps['blobs']): LayerDeps {
  return { blobs: reader, indexes: { load: async () => undefined, save: async () => {} }, spans: { get: () => undefined, set: () => {} }, log: silentLogger };
}

test('the local pass of a gzip layer asks for the next 24 MiB ahead of itself (near), in contiguous non-overlapping ranges covering the whole layer, never more than the window ahead; its index equals the one-stream pass', async () => {
  const { gz, files } = layer();
  const desc = { digest: parseDigest(sha256Digest(gz)), size: gz.length, mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip' };
  const windowed = blobs(gz, true);
  const plain = blobs(gz, false);
  const a = await localPassFormat.open(desc, deps(windowed.reader), undefined as never);
  const b = await localPassFormat.open(desc, deps(plain.reader), undefined as never);
  assert.ok(a && b);
  // Ranges asked ahead: contiguous from the first read's end, to the end of the blob, each "near".
  assert.ok(windowed.ahead.length >= 2, `${windowed.ahead.length} ranges ahead`);
  let at = windowed.reads[0]![0] + windowed.reads[0]![1];
  for (const [offset, length, near] of windowed.ahead) {
    assert.equal(offset, at);
    assert.equal(near, true);
    at = offset + length;
  }
  assert.equal(at, gz.length);
  // Ahead of the end of the read being made (the pass reads 4 MiB steps): at most the window.
  assert.ok(windowed.lead() <= PASS_WINDOW + (4 << 20), `asked ${windowed.lead()} bytes ahead of the reads`);
  // The pass itself reads the same bytes in the same order either way.
  assert.deepEqual(windowed.reads, plain.reads);
  const [ea, eb] = [await a.entries(), await b.entries()];
  assert.deepEqual(ea.map((e) => [e.path, e.size, e.dataOffset]), eb.map((e) => [e.path, e.size, e.dataOffset]));
  assert.deepEqual(ea.map((e) => e.size), files.map((f) => f.length));
  const got = Buffer.alloc(6);
  assert.equal(await a.read(ea[1]!, 0, got), 6);
  assert.equal(got.toString(), 'hello\n');
});
