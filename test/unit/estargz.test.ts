import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseFooter, TOC_DIGEST_ANNOTATION } from '../../src/image/estargz.js';
import { openLayer } from '../../src/image/layer.js';
import { parseDigest } from '../../src/lib/digest.js';
import { silentLogger } from '../../src/lib/logger.js';
import { parseTocJson } from '../../src/image/toc/toc-json.js';
import { CountingUpstream } from '../helpers/fake-upstream.js';
import { patternBytes } from '../helpers/images.js';
import { buildEStargzBlob, estargzFooter as footer, type TocFile } from '../helpers/toc-blob.js';

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
  const layer = openLayer(
    { digest: parseDigest(`sha256:${'c'.repeat(64)}`), size, mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', annotations: { [TOC_DIGEST_ANNOTATION]: `sha256:${'d'.repeat(64)}` } },
    { blobs: blobs as never, indexes: { load: async () => undefined, save: async () => {} }, spans: { get: (k) => spans.get(k), set: (k, v) => void spans.set(k, v) }, log: silentLogger },
  );
  await assert.rejects(layer.entries(), (e: Error & { code?: string }) => e.code === 'ERR_LAYER_FORMAT' && /TOC of \d+ bytes is larger than 67108864/.test(e.message));
  assert.deepEqual(reads, [{ offset: size - 51, length: 51 }]);
});

const GZIP = 'application/vnd.oci.image.layer.v1.tar+gzip';

function countingSpans() {
  const m = new Map<string, Buffer>();
  const sets: string[] = [];
  return { sets, get: (k: string) => m.get(k), set: (k: string, v: Buffer) => void (sets.push(k), m.set(k, v)) };
}

function estargzLayer(files: TocFile[], annotate = true) {
  const { blob, tocDigest, chunkOffsets } = buildEStargzBlob(files);
  const up = new CountingUpstream();
  const digest = up.add(blob);
  const spans = countingSpans();
  const logs: string[] = [];
  const log = { ...silentLogger, info: (_o: unknown, msg: string) => void logs.push(msg) };
  const layer = openLayer(
    { digest, size: blob.length, mediaType: GZIP, annotations: annotate ? { [TOC_DIGEST_ANNOTATION]: tocDigest } : undefined },
    { blobs: up, indexes: { load: async () => undefined, save: async () => {} }, spans, log },
  );
  return { layer, up, spans, chunkOffsets, logs, blob };
}

test('eStargz TOC: UTF-8 names become byte names, base64 xattrs become their bytes, 3 chunks read back', async () => {
  const data = patternBytes(10_000, 3);
  const name = 'dir/grüße.txt';
  const { layer } = estargzLayer([{ name, data, chunk: 4096, xattrs: { 'user.ü': Buffer.from([0xff, 0x00, 0x41]) } }]);
  const entries = await layer.entries();
  assert.deepEqual(entries.map((e) => e.path), ['dir', Buffer.from(name, 'utf8').toString('latin1')]);
  const f = entries[1]!;
  assert.equal(f.size, 10_000);
  assert.equal(f.mtimeMs, Date.parse('2024-01-02T03:04:05Z'));
  assert.deepEqual([...(f.xattrs ?? new Map()).keys()], [Buffer.from('user.ü', 'utf8').toString('latin1')]);
  assert.deepEqual([...(f.xattrs ?? new Map()).values()], [Buffer.from([0xff, 0x00, 0x41])]);
  const out = Buffer.alloc(10_000);
  assert.equal(await layer.read(f, 0, out), 10_000);
  assert.ok(out.equals(data));
});

test('eStargz: 2 concurrent readers of one chunk → 1 fetch of it and 1 decompressed copy', async () => {
  const data = patternBytes(3 * 4096, 4);
  const { layer, up, spans, chunkOffsets, blob } = estargzLayer([{ name: 'f', data, chunk: 4096 }]);
  const [, f] = await layer.entries();
  const before = up.requests.length;
  const a = Buffer.alloc(100);
  const b = Buffer.alloc(200);
  await Promise.all([layer.read(f!, 4096 + 10, a), layer.read(f!, 4096 + 50, b)]);
  const at = chunkOffsets.get('f')![1]!;
  assert.deepEqual(up.requests.slice(before).map((r) => r.offset), [at]);
  assert.equal(spans.sets.filter((k) => k.endsWith(`@${at}`)).length, 1);
  assert.ok(a.equals(data.subarray(4106, 4206)) && b.equals(data.subarray(4146, 4346)));
  assert.ok(blob.length > 0);
});

test('eStargz: a chunk whose digest does not match fails only the reads that touch it', async () => {
  const good = patternBytes(5000, 5);
  const bad = patternBytes(8192, 6);
  const { layer } = estargzLayer([
    { name: 'good', data: good },
    { name: 'bad', data: bad, chunk: 4096, badDigest: 1 },
  ]);
  const [, g, b] = await layer.entries();
  const out = Buffer.alloc(8192);
  assert.equal(await layer.read(g!, 0, out), 5000);
  assert.equal(await layer.read(b!, 0, out.subarray(0, 4096)), 4096, 'the bad file\'s good chunk still reads');
  await assert.rejects(layer.read(b!, 4096, out), (e: Error & { code?: string }) => e.code === 'ERR_LAYER_FORMAT' && /chunk of bad at file offset 4096 hashes to sha256:[0-9a-f]{64}, the TOC says/.test(e.message));
});

test('eStargz: a TOC that does not match its annotation is refused; without the annotation the footer finds the TOC (logged as unverified)', async () => {
  const files = [{ name: 'x', data: patternBytes(100, 7) }];
  const { blob } = buildEStargzBlob(files);
  const up = new CountingUpstream();
  const digest = up.add(blob);
  const wrong = openLayer(
    { digest, size: blob.length, mediaType: GZIP, annotations: { [TOC_DIGEST_ANNOTATION]: `sha256:${'0'.repeat(64)}` } },
    { blobs: up, indexes: { load: async () => undefined, save: async () => {} }, spans: countingSpans(), log: silentLogger },
  );
  await assert.rejects(wrong.entries(), /eStargz: TOC digest sha256:[0-9a-f]{64} does not match the annotation sha256:0{64}/);
  const { layer, logs } = estargzLayer(files, false);
  assert.deepEqual((await layer.entries()).map((e) => e.path), ['dir', 'x']);
  assert.deepEqual(logs, ['layer without a TOC digest annotation: the TOC is not verified']);
});

test('TOC validation: each malformed field is refused by name', () => {
  const toc = (entry: object) => Buffer.from(JSON.stringify({ version: 1, entries: [entry] }));
  const cases: [object, RegExp][] = [
    [{ name: 'a', type: 'reg', size: -1 }, /size is not a non-negative integer: -1/],
    [{ name: 'a', type: 'reg', size: '5' }, /size is not a non-negative integer: "5"/],
    [{ name: 'a', type: 'socket' }, /type is unknown: "socket"/],
    [{ type: 'reg' }, /name is missing/],
    [{ name: 'a', type: 'reg', modtime: 'yesterday' }, /modtime is not a time/],
    [{ name: 'a', type: 'reg', xattrs: { k: '%%%' } }, /xattr "k" is not base64/],
    [{ name: 'a', type: 'reg', chunkDigest: 'md5:x' }, /chunkDigest is not a sha256 digest/],
    [{ name: 'a', type: 'reg', offset: 1.5 }, /offset is not a non-negative integer/],
  ];
  for (const [entry, re] of cases) assert.throws(() => parseTocJson(toc(entry)), re, JSON.stringify(entry));
  assert.throws(() => parseTocJson(Buffer.from('{"version":2,"entries":[]}')), /unsupported TOC version 2/);
  assert.throws(() => parseTocJson(Buffer.from('[]')), /not a JSON object/);
  assert.equal(parseTocJson(toc({ name: 'a', type: 'reg', chunkType: 'zeros', size: 4 }))[0]!.zeros, true);
});
