import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdir, readFile, readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { parseDigest } from '../../src/lib/digest.js';
import { sha256Digest } from '../../src/lib/hash.js';
import { buildGzipIndex } from '../../src/image/gzip-index.js';
import { TarStreamParser } from '../../src/image/tar-stream.js';
import { buildZtoc } from '../../src/image/soci/build.js';
import { decodeGzipZinfo, encodeGzipZinfo, spanRange } from '../../src/image/soci/zinfo.js';
import { decodeZtoc, encodeZtoc } from '../../src/image/soci/ztoc-codec.js';
import { buildSociIndex, ANN_IMAGE_MANIFEST_DIGEST, ANN_INDEX_DIGEST } from '../../src/registry/soci-index.js';
import { hostPlatform, parseReference, resolveImage } from '../../src/registry/index.js';
import { makeRegistry } from '../helpers/client.js';
import { type FaultProxy, startFaultProxy } from '../helpers/fault-proxy.js';
import { type BuiltImage, describeLayout, pushBlob, pushManifest } from '../helpers/images.js';
import { CLI, forceUnmount, makeMountpoint, startMount } from '../helpers/mount.js';
import { type RunningRegistry, startRegistry } from '../helpers/registry.js';
import { tempDir } from '../helpers/tmp.js';
import { compareTrees } from '../helpers/conformance.js';

const run = promisify(execFile);
const GZ = 'application/vnd.oci.image.layer.v1.tar+gzip';
const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
const OCI_INDEX = 'application/vnd.oci.image.index.v1+json';
const REPO = 'e2e/soci';

let dir: { path: string; cleanup: () => Promise<void> };
let reg: RunningRegistry;
let proxy: FaultProxy;
let layout: string;
let big: { digest: string; size: number; bytes: Buffer };
let small: { digest: string; size: number; bytes: Buffer };
let manifest: { config: unknown; layers: { digest: string; size: number; mediaType: string }[] };
let probe: string; // a ~1 MB real file of the big layer
let image: BuiltImage;
let truth: string; // umoci unpack's rootfs of the original image
const mounts: string[] = [];

/**
 * A gzip layer of real files from /usr, cut once it holds 105 MB compressed: Python's tarfile
 * (PAX, hardlinks found by inode) into gzip level 1, one pass, the diff_id hashed on the way.
 */
const MAKE_LAYER = `
import gzip, hashlib, json, os, sys, tarfile
out, target = sys.argv[1], int(sys.argv[2])
raw = open(out, 'wb')
gz = gzip.GzipFile(fileobj=raw, mode='wb', compresslevel=1, mtime=0)
class W:
    def __init__(s): s.h = hashlib.sha256()
    def write(s, b): s.h.update(b); return gz.write(b)
w = W()
t = tarfile.open(fileobj=w, mode='w|', format=tarfile.PAX_FORMAT)
names = []
done = False
for root in ['/usr/lib/x86_64-linux-gnu', '/usr/share', '/usr/bin']:
    for d, dirs, files in os.walk(root):
        dirs.sort()
        for n in [None] + sorted(files):
            p = d if n is None else os.path.join(d, n)
            try:
                t.add(p, arcname=p.lstrip('/'), recursive=False)
            except (OSError, ValueError):
                continue
            names.append(p.lstrip('/'))
            if raw.tell() >= target:
                done = True
                break
        if done: break
    if done: break
t.close(); gz.close(); raw.close()
print(json.dumps({'diffId': 'sha256:' + w.h.hexdigest(), 'names': names}))
`;

before(async () => {
  dir = await tempDir('e2e-soci');
  layout = join(dir.path, 'layout');
  await mkdir(join(layout, 'blobs', 'sha256'), { recursive: true });
  const putBlob = async (b: Buffer): Promise<string> => {
    const d = sha256Digest(b);
    await writeFile(join(layout, 'blobs', 'sha256', d.slice(7)), b);
    return d;
  };
  const bigPath = join(dir.path, 'big.tgz');
  const { stdout } = await run('python3', ['-c', MAKE_LAYER, bigPath, String(105 << 20)], { maxBuffer: 64 << 20 });
  const made = JSON.parse(stdout) as { diffId: string; names: string[] };
  const bigBytes = await readFile(bigPath);
  assert.ok(bigBytes.length >= 100e6, `the big layer is ${bigBytes.length} bytes`);
  big = { digest: await putBlob(bigBytes), size: bigBytes.length, bytes: bigBytes };
  // A small second layer: a new file, and a whiteout of one file of the big layer.
  const gone = made.names.find((n) => /\.so\.\d/.test(n))!;
  const staging = join(dir.path, 'small');
  await mkdir(join(staging, 'etc'), { recursive: true });
  await mkdir(join(staging, gone.slice(0, gone.lastIndexOf('/'))), { recursive: true });
  await writeFile(join(staging, 'etc', 'soci-e2e'), 'second layer\n');
  await writeFile(join(staging, gone.slice(0, gone.lastIndexOf('/')), `.wh.${gone.slice(gone.lastIndexOf('/') + 1)}`), '');
  await run('tar', ['cf', join(dir.path, 'small.tar'), '-C', staging, '--owner=0', '--group=0', 'etc', gone.slice(0, gone.lastIndexOf('/'))]);
  const smallTar = await readFile(join(dir.path, 'small.tar'));
  await run('gzip', ['-n', '-k', join(dir.path, 'small.tar')]);
  const smallBytes = await readFile(join(dir.path, 'small.tar.gz'));
  small = { digest: await putBlob(smallBytes), size: smallBytes.length, bytes: smallBytes };
  const config = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', created: '2026-01-02T03:04:05Z', rootfs: { type: 'layers', diff_ids: [made.diffId, sha256Digest(smallTar)] }, config: {} }));
  manifest = {
    config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: await putBlob(config), size: config.length },
    layers: [{ mediaType: GZ, digest: big.digest, size: big.size }, { mediaType: GZ, digest: small.digest, size: small.size }],
  };
  const mBytes = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: OCI_MANIFEST, ...manifest }));
  const mDigest = await putBlob(mBytes);
  await writeFile(join(layout, 'oci-layout'), '{"imageLayoutVersion":"1.0.0"}');
  await writeFile(join(layout, 'index.json'), JSON.stringify({ schemaVersion: 2, manifests: [{ mediaType: OCI_MANIFEST, digest: mDigest, size: mBytes.length, annotations: { 'org.opencontainers.image.ref.name': 'orig' } }] }));

  reg = await startRegistry({ root: join(dir.path, 'storage'), workDir: dir.path });
  await run('skopeo', ['copy', '--quiet', '--dest-tls-verify=false', `oci:${layout}:orig`, `docker://${reg.host}/${REPO}:orig`], { maxBuffer: 16 << 20 });
  proxy = await startFaultProxy(reg.url);
  const bundle = join(dir.path, 'truth');
  await run('umoci', ['unpack', '--image', `${layout}:orig`, bundle]);
  truth = join(bundle, 'rootfs');
  image = await describeLayout(layout, 'orig');
  const { stdout: found } = await run('sh', ['-c', `cd ${bundle}/rootfs && find usr -type f -size +900k -size -1200k | sort | head -1`]);
  probe = found.trim();
  assert.ok(probe, 'a ~1 MB file exists in the image');
});

after(async () => {
  for (const m of mounts.reverse()) await forceUnmount(m);
  await proxy?.close();
  await reg?.stop();
  await dir?.cleanup();
});

const mountpoint = (name: string): Promise<string> => makeMountpoint(dir.path, name, mounts);
const manifestDigest = (): string => sha256Digest(JSON.stringify({ schemaVersion: 2, mediaType: OCI_MANIFEST, ...manifest }));

async function regfs(args: string[]): Promise<{ stdout: string; stderr: string }> {
  return run(CLI, args, { maxBuffer: 16 << 20 });
}

/** Bytes of the big layer asked for (Range headers) since request number `from`. */
function bigLayerBytes(from: number): number {
  let n = 0;
  for (const r of proxy.requests.slice(from)) {
    if (r.method !== 'GET' || !r.path.includes(big.digest)) continue;
    const m = /bytes=(\d+)-(\d+)/.exec(String(r.headers.range ?? ''));
    n += m ? Number(m[2]) - Number(m[1]) + 1 : big.size;
  }
  return n;
}

/** rootfs/ equals umoci unpack of the original: names, types, modes, owners, mtimes, content, xattrs, hardlinks. */
async function sameAsUmoci(mnt: string): Promise<void> {
  const [r] = await compareTrees(image, truth, [join(mnt, 'rootfs')]);
  assert.deepEqual(r!.diffs, []);
  const { stdout } = await run('sh', ['-c', `find '${truth}' -printf x | wc -c`]);
  assert.equal(r!.entries, Number(stdout.trim()), 'every path of the unpacked image was compared');
}

function logLines(stderr: string): { msg?: string; level?: number | string; how?: string; layer?: string; found?: string }[] {
  return stderr
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as { msg?: string });
}

/** Mounts `tag` through the counting proxy with an empty cache; lists rootfs/ and reads the probe. */
async function lazyMount(name: string, tag: string): Promise<{ mnt: string; stop: () => Promise<string>; bytes: number; probeOk: boolean; listing: string[] }> {
  const mnt = await mountpoint(name);
  // Counted from the start: the mount fetches a SOCI layer's first bytes while it starts.
  const from = proxy.requests.length;
  const m = await startMount(`${proxy.host}/${REPO}:${tag}`, mnt, ['--cache-dir', join(dir.path, `cache-${name}`), '--log-level', 'info']);
  const listing = (await readdir(join(mnt, 'rootfs'))).sort();
  const got = await readFile(join(mnt, 'rootfs', probe));
  const want = await readFile(join(dir.path, 'truth', 'rootfs', probe));
  const bytes = bigLayerBytes(from);
  return {
    mnt,
    listing,
    bytes,
    probeOk: got.equals(want),
    stop: async () => {
      assert.deepEqual(await m.stop(), [0, null]);
      return m.stderr();
    },
  };
}

test('index push --tag orig-soci (v2) → a fresh mount lists rootfs/ and reads a 1 MB file fetching < 5% of the 105 MB layer; rootfs/ equals umoci unpack', async (t) => {
  const { stdout, stderr } = await regfs(['index', 'push', `${reg.host}/${REPO}:orig`, '--tag', 'orig-soci', '--cache-dir', join(dir.path, 'cache-build')]);
  assert.match(stdout.trim(), /^sha256:[0-9a-f]{64}$/);
  assert.match(stderr, /layer 1\/2 .*: zTOC sha256:/);
  assert.match(stderr, /layer 2\/2 .*: skipped, smaller than 10\.0 MiB/);
  assert.match(stderr, /SOCI-enabled image .*:orig-soci/);
  const { stdout: insp } = await regfs(['inspect', `${reg.host}/${REPO}:orig-soci`, '--cache-dir', join(dir.path, 'cache-inspect'), '--log-level', 'warn']);
  const soci = (JSON.parse(insp) as { soci: { found: string; version: string; index: string; ztocs: Record<string, string>; layersWithoutZtoc: string[] } }).soci;
  assert.deepEqual([soci.found, soci.version, soci.index, Object.keys(soci.ztocs), soci.layersWithoutZtoc], ['image-index', 'v2', stdout.trim(), [big.digest], [small.digest]]);

  const m = await lazyMount('v2', 'orig-soci');
  try {
    assert.deepEqual(m.listing, (await readdir(truth)).sort());
    assert.ok(m.probeOk, `${probe} reads byte-exact`);
    t.diagnostic(`v2: fetched ${m.bytes} bytes of the ${big.size}-byte layer (${((100 * m.bytes) / big.size).toFixed(2)}%)`);
    assert.ok(m.bytes > 0 && m.bytes < 0.05 * big.size, `fetched ${m.bytes} bytes of the ${big.size}-byte layer (${((100 * m.bytes) / big.size).toFixed(2)}%)`);
    await sameAsUmoci(m.mnt);
  } finally {
    const log = logLines(await m.stop());
    assert.deepEqual(log.filter((l) => l.msg === 'layer served').map((l) => [l.layer, l.how]).sort(), [[big.digest, 'soci'], [small.digest, 'local-pass']].sort());
    assert.equal(log.find((l) => l.msg === 'SOCI index discovery')?.found, 'image-index');
  }
});

test('index push --v1 → the original tag mounts lazily through the referrers tag schema (docker-registry 2.8 has no referrers API): < 5% fetched, rootfs/ equals umoci unpack', async (t) => {
  const { stdout, stderr } = await regfs(['index', 'push', `${reg.host}/${REPO}:orig`, '--v1', '--cache-dir', join(dir.path, 'cache-build')]);
  assert.match(stdout.trim(), /^sha256:[0-9a-f]{64}$/);
  assert.match(stderr, /from the index already in the cache/, 'the second build reuses the cached index');
  assert.match(stderr, /no referrers API .* referrers tag sha256-[0-9a-f]{64}/);
  const m = await lazyMount('v1', 'orig');
  try {
    assert.ok(m.probeOk, `${probe} reads byte-exact`);
    t.diagnostic(`v1: fetched ${m.bytes} bytes of the ${big.size}-byte layer (${((100 * m.bytes) / big.size).toFixed(2)}%)`);
    assert.ok(m.bytes > 0 && m.bytes < 0.05 * big.size, `fetched ${m.bytes} of ${big.size} bytes`);
    await sameAsUmoci(m.mnt);
  } finally {
    const log = logLines(await m.stop());
    assert.equal(log.find((l) => l.msg === 'SOCI index discovery')?.found, 'referrers-tag');
    assert.deepEqual(log.filter((l) => l.msg === 'layer served' && l.layer === big.digest).map((l) => l.how), ['soci']);
  }
});

test('a registry with the referrers API is asked first: GET /v2/<name>/referrers/<digest>?artifactType=…v1, and its answer wins over the tag', async () => {
  const fallback = await (await fetch(`${reg.url}/v2/${REPO}/manifests/sha256-${manifestDigest().slice(7)}`, { headers: { accept: OCI_INDEX } })).text();
  const listed = (JSON.parse(fallback) as { manifests: { digest: string; artifactType: string }[] }).manifests;
  assert.equal(listed.length, 1, 'the v1 push listed one SOCI index in the referrers tag');
  // The proxy plays a registry that has the API (docker-registry 2.8 has none): it answers the
  // listing with that index; everything else goes to the real registry.
  const from = proxy.requests.length;
  proxy.inject(/\/referrers\//, { kind: 'respond', status: 200, body: fallback, headers: { 'content-type': OCI_INDEX } });
  const { stdout } = await regfs(['inspect', `${proxy.host}/${REPO}:orig`, '--cache-dir', join(dir.path, 'cache-inspect-api'), '--log-level', 'warn']);
  proxy.clearFaults();
  const soci = (JSON.parse(stdout) as { soci: { found: string; version: string; index: string } }).soci;
  assert.deepEqual([soci.found, soci.version, soci.index], ['referrers-api', 'v1', listed[0]!.digest]);
  const asked = proxy.requests.slice(from).filter((r) => r.path.includes('/referrers/')).map((r) => r.path);
  assert.deepEqual(asked, [`/v2/${REPO}/referrers/${manifestDigest()}?artifactType=${encodeURIComponent('application/vnd.amazon.soci.index.v1+json')}`]);
  assert.equal(proxy.requests.slice(from).filter((r) => r.path.includes('/manifests/sha256-')).length, 0, 'the tag is not asked when the API answers');
});

test('a registry without the referrers API (404) is remembered: the second discovery on the same client asks only the referrers tag (1 API request for 2 resolutions)', async () => {
  const { registry } = makeRegistry();
  const ref = parseReference(`${proxy.host}/${REPO}:orig`);
  const from = proxy.requests.length;
  const found: (string | undefined)[] = [];
  try {
    for (let i = 0; i < 2; i++) found.push((await resolveImage(registry.client, ref, hostPlatform(), undefined, { index: 'auto' })).soci?.found);
  } finally {
    await registry.close();
  }
  assert.deepEqual(found, ['referrers-tag', 'referrers-tag']);
  const seen = proxy.requests.slice(from).map((r) => r.path);
  assert.equal(seen.filter((p) => p.includes('/referrers/')).length, 1, 'the API was asked once');
  assert.equal(seen.filter((p) => p.includes('/manifests/sha256-')).length, 2, 'the tag each time');
});

/** The zTOC of the big layer as pushed by the v2 test. */
async function goodZtoc(): Promise<{ digest: string; bytes: Buffer }> {
  const get = async (path: string): Promise<Buffer> => Buffer.from(await (await fetch(`${reg.url}/v2/${REPO}/${path}`, { headers: { accept: `${OCI_INDEX}, ${OCI_MANIFEST}` } })).arrayBuffer());
  const index = JSON.parse((await get('manifests/orig-soci')).toString()) as { manifests: { digest: string; artifactType?: string }[] };
  const sociDigest = index.manifests.find((d) => d.artifactType)!.digest;
  const soci = JSON.parse((await get(`manifests/${sociDigest}`)).toString()) as { layers: { digest: string }[] };
  const digest = soci.layers[0]!.digest;
  return { digest, bytes: await get(`blobs/${digest}`) };
}

/** A SOCI-enabled image (v2) whose index lists `ztoc` for the big layer. */
async function pushSociImage(tag: string, ztoc: Buffer): Promise<void> {
  const z = await pushBlob(reg.url, REPO, ztoc);
  await pushBlob(reg.url, REPO, Buffer.from('{}'));
  const idx = buildSociIndex('v2', [{ layer: { mediaType: GZ, digest: parseDigest(big.digest), size: big.size }, digest: parseDigest(z), size: ztoc.length, spanSize: 4 << 20 }], undefined, 'test');
  await pushManifest(reg.url, REPO, idx.descriptor.digest, idx.bytes.toString(), OCI_MANIFEST);
  const annotated = JSON.stringify({ schemaVersion: 2, mediaType: OCI_MANIFEST, ...manifest, annotations: { [ANN_INDEX_DIGEST]: idx.descriptor.digest } });
  const md = await pushManifest(reg.url, REPO, sha256Digest(annotated), annotated, OCI_MANIFEST);
  const platform = { os: 'linux', architecture: 'amd64' };
  const index = JSON.stringify({
    schemaVersion: 2,
    mediaType: OCI_INDEX,
    manifests: [
      { mediaType: OCI_MANIFEST, digest: md, size: Buffer.byteLength(annotated), platform },
      { ...idx.descriptor, platform, annotations: { [ANN_IMAGE_MANIFEST_DIGEST]: md } },
    ],
  });
  await pushManifest(reg.url, REPO, tag, index, OCI_INDEX);
}

test('tampered SOCI artifacts (zTOC digest, span digest, checkpoint past the blob, TOC of another layer) → the layer is served by the local pass, bytes exact, one warning each', async () => {
  const good = await goodZtoc();
  const z = decodeZtoc(good.bytes);
  const cps = decodeGzipZinfo(z.compression.checkpoints);
  // A span digest that does not match: the span holding the probe file's first byte.
  const entry = z.entries.find((e) => e.name === probe)!;
  const spanOfProbe = cps.checkpoints.findLastIndex((c) => c.out <= entry.offset);
  const badSpan = structuredClone(z);
  badSpan.compression.spanDigests[spanOfProbe] = sha256Digest('not this span');
  await pushSociImage('tamper-span', encodeZtoc(badSpan));
  // A checkpoint beyond the end of the blob.
  const beyond = structuredClone(z);
  const moved = cps.checkpoints.map((c, i) => (i === cps.checkpoints.length - 1 ? { ...c, in: big.size + 100 } : c));
  beyond.compression.checkpoints = encodeGzipZinfo({ spanSize: cps.spanSize, checkpoints: moved });
  await pushSociImage('tamper-checkpoint', encodeZtoc(beyond));
  // The zTOC of another layer (the small one) listed for the big layer.
  const parser = new TarStreamParser();
  const read = async (o: number, into: Uint8Array): Promise<number> => (into.set(small.bytes.subarray(o, o + into.length)), Math.max(0, Math.min(into.length, small.size - o)));
  const gi = await buildGzipIndex(parseDigest(small.digest), small.size, read, (c) => parser.push(c), { span: 1 << 20 });
  const other = await buildZtoc({ format: 'gzip', compressedSize: small.size, uncompressedSize: gi.uncompressedSize, entries: parser.entries, checkpoints: gi.checkpoints }, read, 4 << 20);
  await pushSociImage('tamper-other-layer', other.bytes);
  assert.ok(spanRange(cps.checkpoints, spanOfProbe, big.size).end > 0);

  const cases: [string, string, RegExp][] = [
    ['digest', 'orig-soci', /zTOC blob has digest sha256:[0-9a-f]{64}, the index says/],
    ['span', 'tamper-span', new RegExp(`span ${spanOfProbe} \\(bytes \\d+-\\d+\\) has digest`)],
    ['checkpoint', 'tamper-checkpoint', /beyond the \d+-byte blob/],
    ['other-layer', 'tamper-other-layer', /it describes a blob of \d+ bytes; the layer has \d+ \(a TOC of another layer\?\)/],
  ];
  for (const [name, tag, why] of cases) {
    // The wrong-digest case: the registry hands out other bytes for the zTOC blob.
    if (name === 'digest') proxy.inject(new RegExp(good.digest), ...Array.from({ length: 20 }, () => ({ kind: 'respond' as const, status: 200, body: Buffer.concat([good.bytes.subarray(0, -1), Buffer.from([good.bytes.at(-1)! ^ 1])]) })));
    const m = await lazyMount(`tamper-${name}`, tag);
    let stderr = '';
    try {
      assert.ok(m.probeOk, `${name}: ${probe} reads byte-exact`);
      await sameAsUmoci(m.mnt);
    } finally {
      proxy.clearFaults();
      stderr = await m.stop();
    }
    const warnings = logLines(stderr).filter((l) => l.msg === 'SOCI zTOC refused; the layer is served by the local pass');
    assert.equal(warnings.length, 1, `${name}: one warning, got ${warnings.length}`);
    assert.match(JSON.stringify(warnings[0]), why);
    const served = logLines(stderr).filter((l) => l.msg === 'layer served' && l.layer === big.digest).map((l) => l.how);
    assert.deepEqual(served, name === 'span' ? ['soci', 'soci-refused', 'local-pass'] : ['soci-refused', 'local-pass'], `${name}: served ${served}`);
  }
});
