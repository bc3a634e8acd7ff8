import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { cp, link, mkdir, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { buildRichImage } from '../helpers/fixture-rich-image.js';
import { type BuiltImage, blobPath, describeLayout, patternBytes, pushBlob, pushManifest, pushRawImage } from '../helpers/images.js';
import { forceUnmount, makeMountpoint, parsePrometheus, startMount } from '../helpers/mount.js';
import { type RunningRegistry, startRegistry } from '../helpers/registry.js';
import { freePort, tempDir, waitForMatch } from '../helpers/tmp.js';
import { compareTrees, snapshot } from '../helpers/conformance.js';

const run = promisify(execFile);
const ZSTD = 'application/vnd.oci.image.layer.v1.tar+zstd';
const POSITION = 'io.containers.zstd-chunked.manifest-position';
const CHECKSUM = 'io.containers.zstd-chunked.manifest-checksum';
const MiB = 1 << 20;

let dir: { path: string; cleanup: () => Promise<void> };
let reg: RunningRegistry;
let gzipImage: BuiltImage;
let chunked: { data: Buffer; mediaType: string; annotations?: Record<string, string> }[];
let plain: { data: Buffer; mediaType: string; annotations?: Record<string, string> }[];
let probe: string; // a ~1 MB real file of the big layer
const mounts: string[] = [];

/** Layer blobs and annotations of an OCI layout written by skopeo. */
async function layersOf(image: BuiltImage): Promise<{ data: Buffer; mediaType: string; annotations?: Record<string, string> }[]> {
  const manifest = JSON.parse(await readFile(blobPath(image.layout, image.manifestDigest), 'utf8')) as { layers: { digest: string; mediaType: string; annotations?: Record<string, string> }[] };
  return Promise.all(manifest.layers.map(async (l) => ({ data: await readFile(blobPath(image.layout, l.digest)), mediaType: l.mediaType, ...(l.annotations ? { annotations: l.annotations } : {}) })));
}

/** Pushes an OCI layout's image as it is (config, layers, manifest bytes) with the distribution API. */
async function pushLayout(image: BuiltImage, repo: string, tag: string): Promise<void> {
  const manifestBytes = await readFile(blobPath(image.layout, image.manifestDigest));
  const manifest = JSON.parse(manifestBytes.toString('utf8')) as { mediaType?: string; config: { digest: string }; layers: { digest: string }[] };
  for (const d of [manifest.config, ...manifest.layers]) await pushBlob(reg.url, repo, await readFile(blobPath(image.layout, d.digest)));
  await pushManifest(reg.url, repo, tag, manifestBytes.toString('utf8'), manifest.mediaType ?? 'application/vnd.oci.image.manifest.v1+json');
}

before(async () => {
  dir = await tempDir('e2e-zstd');
  // The rich fixture (whiteouts, opaque dir, hardlinks, FIFO, device, odd modes) plus one big
  // layer of real files, incompressible data, a hardlink and binary xattrs.
  const rich = await buildRichImage(dir.path);
  const bundle = join(dir.path, 'big-bundle');
  await run('umoci', ['unpack', '--image', `${rich.layout}:latest`, bundle]);
  const r = join(bundle, 'rootfs');
  await mkdir(join(r, 'big'), { recursive: true });
  await cp('/usr/lib/gcc', join(r, 'usr/lib/gcc'), { recursive: true, verbatimSymlinks: true });
  for (let i = 0; i < 16; i++) await writeFile(join(r, 'big', `blob${i}`), patternBytes(5 * MiB, 500 + i));
  await link(join(r, 'big/blob0'), join(r, 'big/blob0-link'));
  await run('python3', ['-c', `import os; os.setxattr(${JSON.stringify(join(r, 'big/blob1'))}, 'user.regfs.bin', bytes([0, 255, 1, 128])); os.setxattr(${JSON.stringify(join(r, 'big'))}, 'user.regfs.dir', b'yes')`]);
  await run('umoci', ['repack', '--image', `${rich.layout}:latest`, bundle]);
  await rm(bundle, { recursive: true, force: true });
  gzipImage = await describeLayout(rich.layout, 'latest');
  const { stdout: found } = await run('sh', ['-c', 'cd / && find usr/lib/gcc -type f -size +700k -size -1500k | sort | head -1']);
  probe = found.trim();
  assert.ok(probe, 'a ~1 MB file exists in the big layer');
  for (const [format, out] of [['zstd:chunked', 'zc'], ['zstd', 'zs']] as const) {
    await run('skopeo', ['copy', '--quiet', '--dest-compress', '--dest-compress-format', format, `oci:${rich.layout}:latest`, `oci:${join(dir.path, out)}:latest`]);
  }
  const zc = await describeLayout(join(dir.path, 'zc'), 'latest');
  const zs = await describeLayout(join(dir.path, 'zs'), 'latest');
  chunked = await layersOf(zc);
  plain = await layersOf(zs);
  assert.ok(chunked.every((l) => l.mediaType === ZSTD && l.annotations?.[POSITION] && l.annotations[CHECKSUM]), 'skopeo wrote zstd:chunked annotations');
  assert.ok(plain.every((l) => l.mediaType === ZSTD && !l.annotations));
  assert.ok(chunked.at(-1)!.data.length >= 80_000_000, `the big zstd:chunked layer is ${chunked.at(-1)!.data.length} bytes`);
  reg = await startRegistry({ root: join(dir.path, 'storage'), workDir: dir.path });
  await pushLayout(zc, 'e2e/zc', 'v1');
  await pushLayout(zs, 'e2e/zs', 'v1');
});

after(async () => {
  for (const m of mounts) await forceUnmount(m);
  await reg?.stop();
  await dir?.cleanup();
});

const mountpoint = (name: string): Promise<string> => makeMountpoint(dir.path, name, mounts);

async function metrics(port: number): Promise<Map<string, number>> {
  return parsePrometheus(await (await fetch(`http://127.0.0.1:${port}/metrics`)).text());
}

test('zstd:chunked and zstd images converted by skopeo: rootfs/ equals umoci unpack of the gzip original (tree, content, hardlinks, xattrs)', async () => {
  const truthDir = join(dir.path, 'truth');
  await run('umoci', ['unpack', '--image', `${gzipImage.layout}:latest`, truthDir]);
  const truth = await snapshot(gzipImage, join(truthDir, 'rootfs'));
  // The ground truth really has what the comparison must cover here.
  assert.equal(truth.entries["'big/blob1'"]?.xattrs["'user.regfs.bin'"], '00ff0180');
  assert.equal(truth.entries["'big'"]?.xattrs["'user.regfs.dir'"], '796573');
  assert.ok(truth.hardlink_groups.some((g) => g.includes("'big/blob0'") && g.includes("'big/blob0-link'")));
  for (const [repo, format] of [['e2e/zc', 'zstd:chunked'], ['e2e/zs', 'zstd']] as const) {
    const mnt = await mountpoint(`tree-${repo.slice(4)}`);
    const port = await freePort();
    const m = await startMount(`${reg.host}/${repo}:v1`, mnt, ['--cache-dir', join(dir.path, `cache-tree-${repo.slice(4)}`), '--log-level', 'warn', '--metrics', `127.0.0.1:${port}`]);
    try {
      // tree-compare.py: names, types, modes, owners, mtimes, content, xattrs, hardlink groups.
      const [cmp] = await compareTrees(gzipImage, join(truthDir, 'rootfs'), [join(mnt, 'rootfs')]);
      assert.deepEqual(cmp!.diffs, [], format);
      assert.ok(cmp!.entries >= Object.keys(truth.entries).length, `${format}: compared ${cmp!.entries} entries`);
      const passes = (await metrics(port)).get('regfs_layer_indexes_built_total{format="zstd"}') ?? 0;
      // zstd:chunked lists from its TOCs; plain zstd decodes each of its 4 layers once.
      assert.equal(passes, format === 'zstd' ? chunked.length : 0, `${format}: full passes`);
    } finally {
      assert.deepEqual(await m.stop(), [0, null]);
    }
  }
});

test('zstd:chunked, ≥ 80 MB layer: reading one ~1 MB file fetches < 5% of the layer', async () => {
  const big = chunked.at(-1)!.data.length;
  const mnt = await mountpoint('zc-lazy');
  const port = await freePort();
  const m = await startMount(`${reg.host}/e2e/zc:v1`, mnt, ['--cache-dir', join(dir.path, 'cache-lazy'), '--chunk-size', '256KiB', '--log-level', 'warn', '--metrics', `127.0.0.1:${port}`]);
  try {
    const data = await readFile(join(mnt, 'rootfs', probe));
    assert.ok(data.equals(await readFile(join('/', probe))));
    const fetched = (await metrics(port)).get('regfs_fetched_bytes_total')!;
    console.log(`# zstd:chunked: one ${data.length}-byte file cost ${fetched} fetched bytes of a ${big}-byte layer (${((100 * fetched) / big).toFixed(2)}%)`);
    assert.ok(fetched < big * 0.05, `fetched ${fetched} of ${big} bytes (${((100 * fetched) / big).toFixed(2)}%)`);
  } finally {
    assert.deepEqual(await m.stop(), [0, null]);
  }
});

/** Rewrites the TOC of a zstd:chunked blob (skopeo 1.9 layout: TOC frame, then the 40-byte footer frame). */
async function rewriteToc(blob: Buffer, edit: (toc: { entries: Record<string, unknown>[] }) => void): Promise<{ data: Buffer; annotations: Record<string, string> }> {
  const footer = blob.subarray(blob.length - 48);
  assert.equal(footer.readUInt32LE(0), 0x184d2a50);
  assert.equal(footer.readUInt32LE(4), 40);
  const offset = Number(footer.readBigUInt64LE(8));
  const length = Number(footer.readBigUInt64LE(16));
  const zstdIo = (args: string[], input: Buffer): Promise<Buffer> =>
    new Promise((resolve, reject) => {
      const c = execFile('zstd', args, { encoding: 'buffer', maxBuffer: 64 << 20 }, (e, out) => (e ? reject(e) : resolve(out)));
      c.stdin!.end(input);
    });
  const toc = JSON.parse((await zstdIo(['-dc'], blob.subarray(offset, offset + length))).toString('utf8')) as { entries: Record<string, unknown>[] };
  edit(toc);
  const json = Buffer.from(JSON.stringify(toc));
  const compressed = await zstdIo(['-q', '-c'], json);
  const frame = Buffer.alloc(8);
  frame.writeUInt32LE(0x184d2a50, 0);
  frame.writeUInt32LE(compressed.length, 4);
  const newFooter = Buffer.from(footer);
  newFooter.writeBigUInt64LE(BigInt(offset), 8);
  newFooter.writeBigUInt64LE(BigInt(compressed.length), 16);
  newFooter.writeBigUInt64LE(BigInt(json.length), 24);
  const data = Buffer.concat([blob.subarray(0, offset - 8), frame, compressed, newFooter]);
  return { data, annotations: { [POSITION]: `${offset}:${compressed.length}:${json.length}:1`, [CHECKSUM]: `sha256:${createHash('sha256').update(compressed).digest('hex')}` } };
}

test('zstd:chunked: a chunk whose digest does not match reads EIO on that file only; the rest of the layer reads', async () => {
  const big = chunked.at(-1)!;
  const { data, annotations } = await rewriteToc(big.data, (toc) => {
    const e = toc.entries.find((x) => x.name === 'big/blob3' && typeof x.chunkDigest === 'string')!;
    assert.ok(e, 'big/blob3 has a chunk with a chunkDigest');
    e.chunkDigest = `sha256:${'0'.repeat(64)}`;
  });
  await pushRawImage(reg.url, 'e2e/zc-bad-chunk', 'v1', [{ data, mediaType: ZSTD, annotations }]);
  const mnt = await mountpoint('zc-bad-chunk');
  const m = await startMount(`${reg.host}/e2e/zc-bad-chunk:v1`, mnt, ['--cache-dir', join(dir.path, 'cache-bad-chunk'), '--log-level', 'warn']);
  try {
    await assert.rejects(readFile(join(mnt, 'rootfs/big/blob3')), /EIO/);
    assert.ok((await readFile(join(mnt, 'rootfs/big/blob4'))).equals(patternBytes(5 * MiB, 504)));
    assert.ok((await readFile(join(mnt, 'rootfs', probe))).equals(await readFile(join('/', probe))));
    await waitForMatch(() => m.stderr(), /chunk of big\/blob3 at file offset \d+ hashes to sha256:[0-9a-f]{64}, the TOC says sha256:0{64}; refused/);
  } finally {
    assert.deepEqual(await m.stop(), [0, null]);
  }
});

test('zstd:chunked: a TOC that fails its checksum reads EIO on that layer with one log line; without annotations the footer finds the TOC', async () => {
  const big = chunked.at(-1)!;
  const small = chunked[0]!;
  // The good layer is the lower one: an upper layer's view needs the layers below it (implied parents).
  await pushRawImage(reg.url, 'e2e/zc-bad-toc', 'v1', [
    { data: small.data, mediaType: ZSTD },
    { data: big.data, mediaType: ZSTD, annotations: { ...big.annotations, [CHECKSUM]: `sha256:${'1'.repeat(64)}` } },
  ]);
  const mnt = await mountpoint('zc-bad-toc');
  const m = await startMount(`${reg.host}/e2e/zc-bad-toc:v1`, mnt, ['--cache-dir', join(dir.path, 'cache-bad-toc'), '--log-level', 'info']);
  try {
    const layers = (await readdir(join(mnt, 'layers'))).sort();
    assert.equal(layers.length, 2);
    const bad = `sha256:${createHash('sha256').update(big.data).digest('hex')}`;
    const good = layers.find((l) => l !== bad)!;
    for (let i = 0; i < 3; i++) await assert.rejects(readdir(join(mnt, 'layers', bad)), /EIO/);
    assert.ok((await readdir(join(mnt, 'layers', good))).includes('etc'));
    await waitForMatch(() => m.stderr(), /layer without a TOC digest annotation: the TOC is not verified/);
    const refused = m.stderr().split('\n').filter((l) => l.includes('"layer refused: its files read EIO"'));
    assert.equal(refused.length, 1, refused.join('\n'));
    assert.match(refused[0]!, new RegExp(`"layer":"${bad}".*"format":"zstd:chunked".*TOC digest sha256:[0-9a-f]{64} does not match the annotation sha256:1{64}`));
  } finally {
    assert.deepEqual(await m.stop(), [0, null]);
  }
});

test('plain zstd: after a daemon restart, with the raw layer chunks removed from the cache, it lists and reads with 0 bytes fetched and no second decode', async () => {
  const cacheDir = join(dir.path, 'cache-restart');
  const mnt = await mountpoint('zs-restart');
  const files = ['big/blob7', 'big/blob15', probe];
  const first = await startMount(`${reg.host}/e2e/zs:v1`, mnt, ['--cache-dir', cacheDir, '--log-level', 'info']);
  try {
    for (const f of files) await readFile(join(mnt, 'rootfs', f));
  } finally {
    assert.deepEqual(await first.stop(), [0, null]);
  }
  assert.equal(first.stderr().split('\n').filter((l) => l.includes('"layer indexed"') && l.includes('"format":"zstd"')).length, plain.length);
  // Without the compressed bytes, a second decode would have to fetch the layer again.
  const hexes = plain.map((l) => createHash('sha256').update(l.data).digest('hex'));
  let removed = 0;
  // The raw layer's segment files are `sha256-<hex>.<n>`; the decoded pieces have keys of their own.
  for (const shard of await readdir(join(cacheDir, 'blobs'))) {
    for (const name of await readdir(join(cacheDir, 'blobs', shard))) {
      if (hexes.some((h) => new RegExp(`^sha256-${h}\\.\\d+$`).test(name))) {
        await rm(join(cacheDir, 'blobs', shard, name));
        removed++;
      }
    }
  }
  assert.ok(removed > 0, 'raw layer segments were cached and removed');
  const port = await freePort();
  const again = await startMount(`${reg.host}/e2e/zs:v1`, mnt, ['--cache-dir', cacheDir, '--log-level', 'info', '--metrics', `127.0.0.1:${port}`]);
  try {
    assert.ok((await readFile(join(mnt, 'rootfs/big/blob7'))).equals(patternBytes(5 * MiB, 507)));
    assert.ok((await readFile(join(mnt, 'rootfs/big/blob15'))).equals(patternBytes(5 * MiB, 515)));
    assert.ok((await readFile(join(mnt, 'rootfs', probe))).equals(await readFile(join('/', probe))));
    const mm = await metrics(port);
    assert.equal(mm.get('regfs_layer_indexes_built_total{format="zstd"}') ?? 0, 0);
    const layerBytes = plain.reduce((n, l) => n + l.data.length, 0);
    console.log(`# plain zstd after restart: ${mm.get('regfs_fetched_bytes_total')} bytes fetched of ${layerBytes}`);
    assert.equal(mm.get('regfs_fetched_bytes_total') ?? 0, 0);
    assert.doesNotMatch(again.stderr(), /decoding a zstd span again|"layer indexed"/);
  } finally {
    assert.deepEqual(await again.stop(), [0, null]);
  }
});

test('plain zstd: a truncated and a garbage layer read EIO on those layers; the mount and the good layer stay up', async () => {
  const good = plain[0]!;
  const truncated = plain.at(-1)!.data.subarray(0, plain.at(-1)!.data.length - 5000);
  const garbage = patternBytes(3 * MiB, 77);
  await pushRawImage(reg.url, 'e2e/zs-bad', 'v1', [good, { data: truncated, mediaType: ZSTD }, { data: garbage, mediaType: ZSTD }]);
  const mnt = await mountpoint('zs-bad');
  const m = await startMount(`${reg.host}/e2e/zs-bad:v1`, mnt, ['--cache-dir', join(dir.path, 'cache-zs-bad'), '--log-level', 'warn']);
  try {
    const digestOf = (b: Buffer): string => `sha256:${createHash('sha256').update(b).digest('hex')}`;
    await assert.rejects(readdir(join(mnt, 'layers', digestOf(truncated))), /EIO/);
    await assert.rejects(readdir(join(mnt, 'layers', digestOf(garbage))), /EIO/);
    await assert.rejects(readdir(join(mnt, 'rootfs')), /EIO/);
    assert.ok((await readdir(join(mnt, 'layers', digestOf(good.data)))).includes('etc'));
    assert.ok((await readFile(join(mnt, 'manifest.json'))).length > 0, 'the mount still answers');
    await waitForMatch(() => m.stderr(), /zstd: the stream ends inside a frame \(truncated\)/);
    await waitForMatch(() => m.stderr(), /zstd: corrupt data near compressed offset 0/);
  } finally {
    assert.deepEqual(await m.stop(), [0, null]);
  }
});
