import { test } from 'node:test';
import assert from 'node:assert/strict';
import { openEStargzLayer, parseFooter, TOC_DIGEST_ANNOTATION } from '../../src/image/estargz.js';
import { parseDigest } from '../../src/lib/digest.js';
import { silentLogger } from '../../src/lib/logger.js';

/** The 51-byte eStargz footer: an empty gzip member whose extra field says where the TOC is. */
function footer(tocOffset: number): Buffer {
  const extra = Buffer.concat([Buffer.from('SG'), Buffer.from([22, 0]), Buffer.from(`${tocOffset.toString(16).padStart(16, '0')}STARGZ`)]);
  const header = Buffer.from([0x1f, 0x8b, 8, 4, 0, 0, 0, 0, 0, 0xff, extra.length, 0]);
  // An empty stored block (as Go's gzip at NoCompression writes it), then CRC-32 and size, both 0.
  return Buffer.concat([header, extra, Buffer.from([1, 0, 0, 0xff, 0xff]), Buffer.alloc(8)]);
}

test('footer parsing: 51-byte, and garbage refused', () => {
  const f = footer(0x1234);
  assert.equal(f.length, 51);
  assert.equal(parseFooter(f), 0x1234);
  assert.equal(parseFooter(Buffer.alloc(51)), undefined);
});

test('a layer that claims a 2 GB TOC is refused before anything is fetched but the footer', async () => {
  const size = 2 ** 31 + 4096;
  const foot = footer(100); // TOC from byte 100 to the end: ~2 GiB
  const reads: { offset: number; length: number }[] = [];
  const blobs = {
    size: async () => size,
    readAt: async (_d: unknown, offset: number, into: Uint8Array) => {
      reads.push({ offset, length: into.length });
      if (offset === size - 51) {
        into.set(foot);
        return 51;
      }
      throw new Error('the TOC must not be fetched');
    },
  };
  const spans = new Map<string, Buffer>();
  const layer = openEStargzLayer(
    { digest: parseDigest(`sha256:${'c'.repeat(64)}`), size, mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', annotations: { [TOC_DIGEST_ANNOTATION]: `sha256:${'d'.repeat(64)}` } },
    { blobs: blobs as never, indexes: { load: async () => undefined, save: async () => {} }, spans: { get: (k) => spans.get(k), set: (k, v) => void spans.set(k, v) }, log: silentLogger },
  );
  await assert.rejects(layer.entries(), (e: Error & { code?: string }) => e.code === 'ERR_LAYER_FORMAT' && /TOC of \d+ bytes is larger than 67108864/.test(e.message));
  assert.deepEqual(reads, [{ offset: size - 51, length: 51 }]);
});
