import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { decodeZstdPrefix, type FrameStart, ZstdStreamDecoder } from '../../src/image/zstd/zstd-decode.js';
import { checksumFromAnnotations, positionFromAnnotations, zstdTocDecompressor } from '../../src/image/zstd/zstd-chunked.js';
import { patternBytes } from '../helpers/images.js';

const run = promisify(execFile);

/** One zstd frame of `data`, made by the zstd CLI (Debian's zstd). */
async function zstdFrame(data: Buffer): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const child = execFile('zstd', ['-q', '-3', '-c'], { encoding: 'buffer', maxBuffer: 64 << 20 }, (err, stdout) => (err ? reject(err) : resolve(stdout)));
    child.stdin!.end(data);
  });
}

test('zstd: 3 concatenated frames (and a skippable frame) decode to their 3 inputs; frame starts at the exact compressed offsets', async () => {
  await run('zstd', ['--version']);
  const parts = [patternBytes(700_000, 1), patternBytes(300_000, 2), patternBytes(1_500_000, 3)];
  const frames = await Promise.all(parts.map(zstdFrame));
  const skippable = Buffer.concat([Buffer.from([0x50, 0x2a, 0x4d, 0x18]), Buffer.from([4, 0, 0, 0]), Buffer.from('skip')]);
  const blob = Buffer.concat([frames[0]!, skippable, frames[1]!, frames[2]!]);
  const all = Buffer.concat(parts);
  assert.ok(decodeZstdPrefix(blob, all.length).equals(all));
  assert.ok(decodeZstdPrefix(blob, 1000).equals(all.subarray(0, 1000)), 'a prefix stops early');
  const starts: FrameStart[] = [];
  const out: Buffer[] = [];
  const d = new ZstdStreamDecoder((b) => out.push(Buffer.from(b)), (f) => starts.push(f));
  for (let at = 0; at < blob.length; at += 65_536) d.push(blob.subarray(at, at + 65_536));
  assert.ok(Buffer.concat(out).equals(all));
  const f0 = frames[0]!.length;
  const f1 = f0 + skippable.length;
  assert.deepEqual(starts, [
    { in: 0, out: 0 },
    { in: f0, out: 700_000 },
    { in: f1, out: 700_000 },
    { in: f1 + frames[1]!.length, out: 1_000_000 },
  ]);
  // Each frame decodes alone from its start: the checkpoints of a multi-frame layer.
  assert.ok(decodeZstdPrefix(blob.subarray(starts[3]!.in), 1_500_000).equals(parts[2]!));
});

test('zstd: garbage and truncated frames throw libzstd\'s reason, never hang', async () => {
  const frame = await zstdFrame(patternBytes(200_000, 4));
  assert.throws(() => decodeZstdPrefix(Buffer.from('this is not zstd at all'), 100), /Unknown frame descriptor/);
  const truncated = decodeZstdPrefix(frame.subarray(0, frame.length >> 1), 200_000);
  assert.ok(truncated.length < 200_000, `a truncated frame decodes only ${truncated.length} bytes`);
  const flipped = Buffer.from(frame);
  const mid = flipped.length >> 1;
  flipped[mid] = flipped[mid]! ^ 0xff;
  assert.throws(() => decodeZstdPrefix(flipped, 200_000), /corrupt|Data corruption|checksum|Corrupted/i);
});

test('zstd:chunked annotations: both key generations are read; a malformed position or a non-CRFS type is refused by name', () => {
  const fail = (why: string) => new Error(why);
  assert.deepEqual(positionFromAnnotations({ 'io.github.containers.zstd-chunked.manifest-position': '100:20:300:1' }, fail), { offset: 100, length: 20, uncompressed: 300 });
  assert.deepEqual(positionFromAnnotations({ 'io.containers.zstd-chunked.manifest-position': '7:8:9:1' }, fail), { offset: 7, length: 8, uncompressed: 9 });
  assert.equal(positionFromAnnotations({}, fail), undefined);
  assert.throws(() => positionFromAnnotations({ 'io.containers.zstd-chunked.manifest-position': '7:8:9' }, fail), /is not offset:length:uncompressedLength:type: "7:8:9"/);
  assert.throws(() => positionFromAnnotations({ 'io.containers.zstd-chunked.manifest-position': '7:8:9:2' }, fail), /TOC type 2 is not supported/);
  assert.equal(checksumFromAnnotations({ 'io.github.containers.zstd-chunked.manifest-checksum': 'sha256:ab' }), 'sha256:ab');
});

test('zstd:chunked footers: the 40-byte (skopeo 1.9) and 64-byte (tar-split) layouts give the TOC location; anything else is no footer', () => {
  const footer = (size: 40 | 64, offset: number, length: number): Buffer => {
    const f = Buffer.alloc(8 + size);
    f.writeUInt32LE(0x184d2a50, 0);
    f.writeUInt32LE(size, 4);
    f.writeBigUInt64LE(BigInt(offset), 8);
    f.writeBigUInt64LE(BigInt(length), 16);
    f.writeBigUInt64LE(1000n, 24);
    f.writeBigUInt64LE(1n, 32);
    f.write('GnUlInUx', 8 + size - 8, 'latin1');
    return f;
  };
  const pad = Buffer.alloc(100, 7);
  assert.deepEqual(zstdTocDecompressor.parseFooter(Buffer.concat([pad, footer(40, 1234, 56)]).subarray(-72), 0), { offset: 1234, length: 56 });
  assert.deepEqual(zstdTocDecompressor.parseFooter(footer(64, 99, 11), 0), { offset: 99, length: 11 });
  const wrongType = footer(64, 99, 11);
  wrongType.writeBigUInt64LE(2n, 8 + 24);
  assert.equal(zstdTocDecompressor.parseFooter(wrongType, 0), undefined);
  assert.equal(zstdTocDecompressor.parseFooter(Buffer.alloc(72), 0), undefined);
});
