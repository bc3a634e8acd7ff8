import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Layer } from '../../src/image/layer.js';
import type { TarEntry } from '../../src/image/tar-entry.js';
import { type Digest, parseDigest } from '../../src/lib/digest.js';
import { AbortedError } from '../../src/lib/errors.js';
import { OrderedRanges } from '../../src/lib/ordered-ranges.js';
import { PROFILE_MEDIA_TYPE, type Profile, ProfileError, decodeProfile, encodeProfile, encodeProfileBounded, servedAs } from '../../src/view/profile-format.js';
import { ProfileRecorder } from '../../src/view/profile-recorder.js';
import { replayProfile } from '../../src/view/profile-replay.js';

const IMAGE = parseDigest(`sha256:${'1'.repeat(64)}`);
const L1 = parseDigest(`sha256:${'a'.repeat(64)}`);
const L2 = parseDigest(`sha256:${'b'.repeat(64)}`);
const expect = { image: IMAGE, layers: new Map([[L1, 1000], [L2, 500]]) };

const sample = (): Profile => ({
  image: IMAGE,
  recordedAt: '2026-11-23T23:00:00.000Z',
  windowMs: 60_000,
  files: [
    { layer: L2, path: 'etc/motd', ranges: [[0, 17]] },
    // A name that is not UTF-8 (Latin-1 "é" as one byte 0xE9) survives as bytes.
    { layer: L1, path: 'data/caf\xe9', ranges: [[4096, 8192], [0, 100]] },
  ],
  blobs: [{ digest: L1, servedAs: 'index', ranges: [[10, 400], [600, 1000]] }],
});

test('encode → decode keeps every field, range order and a non-UTF-8 path byte for byte (written as pathBase64)', () => {
  const bytes = encodeProfile(sample());
  const json = JSON.parse(bytes.toString('utf8')) as { mediaType: string; version: number; files: Record<string, unknown>[] };
  assert.equal(json.mediaType, PROFILE_MEDIA_TYPE);
  assert.equal(json.version, 1);
  assert.deepEqual(json.files.map((f) => [f['path'], f['pathBase64']]), [['etc/motd', undefined], [undefined, Buffer.from('data/caf\xe9', 'latin1').toString('base64')]]);
  assert.deepEqual(decodeProfile(bytes, expect), sample());
});

test('hostile profiles are refused with ProfileError naming what is wrong: size, JSON, media type, version, image, layer, ranges, counts, bytes', () => {
  const good = JSON.parse(encodeProfile(sample()).toString('utf8')) as Record<string, unknown>;
  const cases: [Uint8Array, RegExp][] = [
    [Buffer.alloc((4 << 20) + 1, 0x20), /4194305 bytes, more than the 4194304-byte limit/],
    [Buffer.from('{"mediaType": '), /not JSON/],
    [Buffer.from('[1,2]'), /not a JSON object/],
    [Buffer.from(JSON.stringify({ ...good, mediaType: 'application/vnd.amazon.soci.prefetch.v1+json' })), /media type "application\/vnd\.amazon\.soci\.prefetch\.v1\+json"/],
    [Buffer.from(JSON.stringify({ ...good, version: 2 })), /version 2; this regfs reads version 1/],
    [Buffer.from(JSON.stringify({ ...good, image: `sha256:${'2'.repeat(64)}` })), /recorded for image sha256:2{64}, not sha256:1{64}/],
    [Buffer.from(JSON.stringify({ ...good, files: [{ layer: `sha256:${'c'.repeat(64)}`, path: 'x', ranges: [[0, 1]] }] })), /files\[0\]: sha256:c{64} is not a layer of this image/],
    [Buffer.from(JSON.stringify({ ...good, blobs: [{ digest: L2, servedAs: 'index', ranges: [[0, 501]] }] })), /blobs\[0\]: range \[0, 501\) ends past the end \(500 bytes\)/],
    [Buffer.from(JSON.stringify({ ...good, files: [{ layer: L1, path: 'x', ranges: [[5, 5]] }] })), /files\[0\]: \[5,5\] is not a \[start, end\) range/],
    [Buffer.from(JSON.stringify({ ...good, files: [{ layer: L1, path: 'x', ranges: [[-1, 5]] }] })), /is not a \[start, end\) range/],
    [Buffer.from(JSON.stringify({ ...good, files: [{ layer: L1, path: '', ranges: [] }] })), /files\[0\]: not a path/],
    [Buffer.from(JSON.stringify({ ...good, files: [{ layer: L1, path: 'x', ranges: Array.from({ length: 1025 }, (_, i) => [i, i + 1]) }] })), /at most 1024/],
    [Buffer.from(JSON.stringify({ ...good, files: Array.from({ length: 10_001 }, () => ({ layer: L1, path: 'x', ranges: [] })) })), /more than 10000 entries/],
  ];
  for (const [bytes, re] of cases) assert.throws(() => decodeProfile(bytes, expect), (e: unknown) => e instanceof ProfileError && e.code === 'ERR_PROFILE' && re.test(e.message), re.source);
  const huge = { image: IMAGE, layers: new Map([[L1, 2 ** 31], [L2, 500]]) };
  assert.throws(() => decodeProfile(Buffer.from(JSON.stringify({ ...good, blobs: [{ digest: L1, servedAs: 'index', ranges: [[0, 2 ** 30 + 1]] }] })), huge), /blob ranges ask for more than 1073741824 bytes/);
  // Without an expectation (a file shown on its own) only the structure is checked.
  assert.equal(decodeProfile(Buffer.from(JSON.stringify({ ...good, image: `sha256:${'2'.repeat(64)}` }))).image, `sha256:${'2'.repeat(64)}`);
});

test('ordered ranges: touching and overlapping ranges coalesce in place, first-seen order is kept, and a range bridging two merges all three', () => {
  const r = new OrderedRanges(3);
  assert.ok(r.add(100, 200));
  assert.ok(r.add(0, 50));
  assert.ok(r.add(200, 300)); // touches the first: grows it
  assert.deepEqual(r.ranges(), [[100, 300], [0, 50]]);
  assert.ok(r.add(500, 600));
  assert.equal(r.add(900, 950), false, 'a fourth separate range is refused at max 3');
  assert.ok(r.add(40, 510), 'bridging needs no new range');
  assert.deepEqual(r.ranges(), [[0, 600]]);
});

function entry(path: string, size: number, type: TarEntry['type'] = 'file'): TarEntry {
  return { path, type, mode: 0o644, uid: 0, gid: 0, size, mtimeMs: 0, linkname: '', devmajor: 0, devminor: 0, dataOffset: 0 };
}

/** A layer over fixed entries whose reads return zeros and are logged. */
function fakeLayer(digest: Digest, size: number, entries: TarEntry[], reads: string[], onRead?: () => Promise<void>): Layer {
  return {
    descriptor: { digest, size, mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip' },
    entries: async () => entries,
    read: async (e, offset, into) => {
      await onRead?.();
      reads.push(`${e.path}@${offset}+${into.length}`);
      return into.length;
    },
  };
}

test('the recorder notes file reads and the blob reads made inside them (or inside `attributing`) only: 2 files in read order, coalesced, 1 blob with 2 ranges; nothing before start() or after stop()', async () => {
  const blobReads: string[] = [];
  const rec = new ProfileRecorder(IMAGE, 60_000);
  await rec.wrapLayer(fakeLayer(L1, 1000, [], [])).read(entry('before-start', 10), 0, Buffer.alloc(10));
  rec.start();
  const blobs = rec.wrapBlobs({ size: async () => 1000, readAt: async (d, o, into) => (blobReads.push(`${d}@${o}`), into.length) });
  const inner = fakeLayer(L1, 1000, [], [], async () => void (await blobs.readAt(L1, 300, Buffer.alloc(50))));
  const layer = rec.wrapLayer(inner);
  rec.layerServed(L1, servedAs('local-pass'));
  await blobs.readAt(L1, 0, Buffer.alloc(10)); // an index pass: outside any file read
  await layer.read(entry('b', 100), 0, Buffer.alloc(64));
  await layer.read(entry('a', 100), 10, Buffer.alloc(5));
  await layer.read(entry('b', 100), 64, Buffer.alloc(36));
  // A replay reading through the unwrapped layer: its blob reads count, its file does not.
  await rec.attributing(() => inner.read(entry('r', 100), 0, Buffer.alloc(10)));
  await rec.attributing(() => blobs.readAt(L1, 700, Buffer.alloc(100)));
  rec.stop();
  await layer.read(entry('c', 100), 0, Buffer.alloc(10));
  await rec.attributing(() => blobs.readAt(L1, 900, Buffer.alloc(10)));
  const p = rec.snapshot()!;
  assert.deepEqual(p.files.map((f) => [f.path, f.ranges]), [['b', [[0, 100]]], ['a', [[10, 15]]]]);
  assert.deepEqual(p.blobs, [{ digest: L1, servedAs: 'index', ranges: [[300, 350], [700, 800]] }]);
  assert.equal(blobReads.length, 8, 'every read still reached the reader');
});

test('replay: a layer served as recorded gets its 2 recorded blob ranges, in order; the other layer is read as its file ranges', async () => {
  const prefetched: string[] = [];
  const reads: string[] = [];
  const layers = new Map([
    [L1, fakeLayer(L1, 1000, [entry('data/caf\xe9', 9000)], reads)],
    [L2, fakeLayer(L2, 500, [entry('etc/motd', 17)], reads)],
  ]);
  const r = await replayProfile(decodeProfile(encodeProfile(sample()), expect), {
    layers,
    reader: { prefetch: async (d, o, l) => void prefetched.push(`${d.slice(7, 8)}@${o}+${l}`) },
    servedAs: (d) => (d === L1 ? 'index' : 'soci sha256:x'),
    rate: 0,
    signal: new AbortController().signal,
  });
  assert.deepEqual(prefetched, ['a@10+390', 'a@600+400']);
  assert.deepEqual(reads, ['etc/motd@0+17']);
  assert.deepEqual(r, { bytes: 390 + 400 + 17, blobRanges: 2, fileRanges: 1, failed: 0 });
});

test('replay of a profile naming a file its layer lacks, a directory, or a range past a file\'s end throws ProfileError before fetching anything', async () => {
  const cases: [TarEntry[], RegExp][] = [
    [[entry('etc/other', 17)], /it names etc\/motd, which is not a file of layer sha256:b/],
    [[entry('etc/motd', 0, 'dir')], /it names etc\/motd, which is not a file/],
    [[entry('etc/motd', 16)], /it reads etc\/motd up to byte 17, past its end \(16 bytes\)/],
  ];
  for (const [l2entries, re] of cases) {
    const touched: string[] = [];
    const layers = new Map([
      [L1, fakeLayer(L1, 1000, [entry('data/caf\xe9', 9000)], touched)],
      [L2, fakeLayer(L2, 500, l2entries, touched)],
    ]);
    await assert.rejects(
      replayProfile(sample(), { layers, reader: { prefetch: async (d) => void touched.push(`prefetch ${d}`) }, servedAs: () => 'index', rate: 0, signal: new AbortController().signal }),
      (e: unknown) => e instanceof ProfileError && re.test(e.message),
    );
    assert.deepEqual(touched, [], re.source);
  }
});

test('replay: fetches that fail are counted, never thrown (3 of 3 failed → resolves with failed 3); an abort stops a paced replay before its 2nd range and rejects (AbortedError)', async () => {
  const reads: string[] = [];
  const layers = new Map([
    [L1, fakeLayer(L1, 1000, [entry('data/caf\xe9', 9000)], reads)],
    [L2, { ...fakeLayer(L2, 500, [entry('etc/motd', 17)], reads), read: async () => Promise.reject(new Error('registry down')) }],
  ]);
  const failing = { prefetch: async () => Promise.reject(new Error('registry down')) };
  const r = await replayProfile(sample(), { layers, reader: failing, servedAs: (d) => (d === L1 ? 'index' : 'other'), rate: 0, signal: new AbortController().signal });
  assert.deepEqual(r, { bytes: 390 + 400 + 17, blobRanges: 2, fileRanges: 1, failed: 3 });

  const stop = new AbortController();
  const asked: number[] = [];
  const paced = replayProfile(sample(), {
    layers,
    // 1 byte/s: the pacer sleeps 390 s after the first range, until the abort.
    reader: { prefetch: async (_d, o) => void asked.push(o) },
    servedAs: () => 'index',
    rate: 1,
    signal: stop.signal,
  });
  await new Promise((res) => setTimeout(res, 50));
  stop.abort();
  await assert.rejects(paced, (e: unknown) => e instanceof AbortedError);
  assert.deepEqual(asked, [10]);
});

test('the recorder stops at its limits: 10 000 files, then one onFull call and nothing more (the saved profile stays under 4 MiB)', async () => {
  let full = 0;
  const rec = new ProfileRecorder(IMAGE, 60_000, () => full++);
  rec.start();
  const layer = rec.wrapLayer(fakeLayer(L1, 1000, [], []));
  for (let i = 0; i < 10_005; i++) await layer.read(entry(`f/${i}`, 10), 0, Buffer.alloc(10));
  const p = rec.snapshot()!;
  assert.equal(p.files.length, 10_000);
  assert.equal(full, 1);
  assert.equal(rec.active, false);
  const bytes = encodeProfile(p);
  assert.ok(bytes.length < 4 << 20, `${bytes.length} bytes`);
  assert.equal(decodeProfile(bytes, expect).files.length, 10_000);
});

test('a profile whose paths make it larger than 4 MiB (100 paths of 60 KB ≈ 6 MB) is saved as its first 50 files, without blob ranges', () => {
  const long = (i: number): string => `${String(i).padStart(4, '0')}/${'x'.repeat(60_000)}`;
  const p: Profile = { ...sample(), files: Array.from({ length: 100 }, (_, i) => ({ layer: L1, path: long(i), ranges: [[0, 1]] as [number, number][] })) };
  const bytes = encodeProfileBounded(p);
  assert.ok(bytes.length <= 4 << 20, `${bytes.length} bytes`);
  const back = decodeProfile(bytes, expect);
  // 100 → 50 (~3 MB fits): the first 50, in order.
  assert.deepEqual(back.files.map((f) => f.path), Array.from({ length: 50 }, (_, i) => long(i)));
  assert.deepEqual(back.blobs, []);
  assert.deepEqual(decodeProfile(encodeProfileBounded(sample()), expect), sample(), 'a profile that fits is kept whole');
});
