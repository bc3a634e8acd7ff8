import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { cp, mkdir, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { patternBytes, pushRawImage } from '../helpers/images.js';
import { forceUnmount, parsePrometheus, startMount, makeMountpoint } from '../helpers/mount.js';
import { type RunningRegistry, startRegistry } from '../helpers/registry.js';
import { freePort, tempDir, waitForMatch } from '../helpers/tmp.js';

const run = promisify(execFile);
const SCRIPTS = join(import.meta.dirname, '../../../scripts');
const TOC = 'containerd.io/snapshot/stargz/toc.digest';
const GZ = 'application/vnd.oci.image.layer.v1.tar+gzip';

let dir: { path: string; cleanup: () => Promise<void> };
let reg: RunningRegistry;
let esgz: Buffer;
let tocDigest: string;
let probe: string; // a ~1 MB real file of the layer, not prioritised
const mounts: string[] = [];

before(async () => {
  dir = await tempDir('e2e-estargz');
  const convert = join(dir.path, 'estargz-convert');
  await run(join(SCRIPTS, 'build-estargz-convert.sh'), [convert]);
  const staging = join(dir.path, 'staging');
  await mkdir(join(staging, 'usr/bin'), { recursive: true });
  await mkdir(join(staging, 'etc'), { recursive: true });
  await mkdir(join(staging, 'data'), { recursive: true });
  await cp('/usr/bin/bash', join(staging, 'usr/bin/bash'));
  await cp('/etc/os-release', join(staging, 'etc/os-release'), { dereference: true });
  await cp('/usr/lib/gcc', join(staging, 'usr/lib/gcc'), { recursive: true, verbatimSymlinks: true });
  for (let i = 0; i < 8; i++) await writeFile(join(staging, 'data', `blob${i}`), patternBytes(4 << 20, 300 + i));
  const { stdout: found } = await run('sh', ['-c', `cd ${staging} && find usr/lib/gcc -type f -size +700k -size -1500k | sort | head -1`]);
  probe = found.trim();
  assert.ok(probe, 'a ~1 MB file exists in the staged tree');
  await run('tar', ['cf', join(dir.path, 'layer.tar'), '-C', staging, '.']);
  const out = join(dir.path, 'layer.esgz');
  const { stdout } = await run(convert, [join(dir.path, 'layer.tar'), out, 'usr/bin/bash', 'etc/os-release'], { maxBuffer: 1 << 20 });
  tocDigest = (JSON.parse(stdout) as { tocDigest: string }).tocDigest;
  esgz = await readFile(out);
  assert.ok(esgz.length >= 50_000_000, `eStargz layer is ${esgz.length} bytes`);
  reg = await startRegistry({ root: join(dir.path, 'storage'), workDir: dir.path });
  await pushRawImage(reg.url, 'e2e/esgz', 'v1', [{ data: esgz, mediaType: GZ, annotations: { [TOC]: tocDigest } }]);
});

after(async () => {
  for (const m of mounts) await forceUnmount(m);
  await reg?.stop();
  await dir?.cleanup();
});

const mountpoint = (name: string): Promise<string> => makeMountpoint(dir.path, name, mounts);

/** Rewrites the TOC of an eStargz blob with Python (tar + gzip), keeping offsets and footer. */
async function rewriteToc(blob: Buffer, edit: string): Promise<{ blob: Buffer; toc: string }> {
  const inPath = join(dir.path, `in-${Math.random()}`);
  const outPath = `${inPath}.out`;
  await writeFile(inPath, blob);
  const py = `
import gzip, io, json, sys, tarfile, hashlib
b = open(${JSON.stringify(inPath)}, 'rb').read()
footer = b[-51:]
off = int(footer[16:32].decode(), 16)
t = tarfile.open(fileobj=io.BytesIO(gzip.decompress(b[off:-51])))
toc = json.load(t.extractfile('stargz.index.json'))
${edit}
data = json.dumps(toc, indent='\\t').encode()
buf = io.BytesIO()
w = tarfile.open(fileobj=buf, mode='w', format=tarfile.GNU_FORMAT)
i = tarfile.TarInfo('stargz.index.json'); i.size = len(data); w.addfile(i, io.BytesIO(data)); w.close()
open(${JSON.stringify(outPath)}, 'wb').write(b[:off] + gzip.compress(buf.getvalue()) + footer)
print('sha256:' + hashlib.sha256(data).hexdigest())
`;
  const { stdout } = await run('python3', ['-c', py], { maxBuffer: 1 << 20 });
  return { blob: await readFile(outPath), toc: stdout.trim() };
}

test('eStargz from the reference converter: reading one 1 MB file fetches < 5% of the layer; landmarks hidden', async () => {
  const mnt = await mountpoint('esgz');
  const port = await freePort();
  const m = await startMount(`${reg.host}/e2e/esgz:v1`, mnt, ['--cache-dir', join(dir.path, 'cache1'), '--chunk-size', '256KiB', '--log-level', 'warn', '--metrics', `127.0.0.1:${port}`]);
  try {
    const data = await readFile(join(mnt, 'rootfs', probe));
    assert.ok(data.equals(await readFile(join('/usr/lib/gcc', probe.slice('usr/lib/gcc/'.length)))));
    const metrics = parsePrometheus(await (await fetch(`http://127.0.0.1:${port}/metrics`)).text());
    const fetched = metrics.get('regfs_fetched_bytes_total')!;
    console.log(`# eStargz: one ${data.length}-byte file cost ${fetched} fetched bytes of a ${esgz.length}-byte layer (${((100 * fetched) / esgz.length).toFixed(2)}%)`);
    assert.ok(fetched < esgz.length * 0.05, `fetched ${fetched} of ${esgz.length} bytes (${((100 * fetched) / esgz.length).toFixed(2)}%)`);
    assert.equal(metrics.get('regfs_layer_indexes_built_total{format="gzip"}') ?? 0, 0, 'no full pass over the layer');
    const bash = await readFile(join(mnt, 'rootfs/usr/bin/bash'));
    assert.equal(createHash('sha256').update(bash).digest('hex'), createHash('sha256').update(await readFile('/usr/bin/bash')).digest('hex'));
    assert.equal((await stat(join(mnt, 'rootfs/usr/bin/bash'))).mode & 0o777, (await stat('/usr/bin/bash')).mode & 0o777);
    const { stdout: ls } = await run('ls', ['-a', join(mnt, 'rootfs')]);
    assert.doesNotMatch(ls, /landmark|stargz\.index\.json/);
    assert.match(ls, /usr/);
  } finally {
    assert.deepEqual(await m.stop(), [0, null]);
  }
});

test('eStargz: a chunk that does not match its chunkDigest is refused with EIO; other files still read', async () => {
  const { blob, toc } = await rewriteToc(
    esgz,
    `
for e in toc['entries']:
    name = e.get('name', '')
    if (name[2:] if name.startswith('./') else name) == ${JSON.stringify(probe)} and e.get('chunkDigest'):
        e['chunkDigest'] = 'sha256:' + '0' * 64
        break
`,
  );
  await pushRawImage(reg.url, 'e2e/esgz-bad-chunk', 'v1', [{ data: blob, mediaType: GZ, annotations: { [TOC]: toc } }]);
  const mnt = await mountpoint('esgz-bad');
  const m = await startMount(`${reg.host}/e2e/esgz-bad-chunk:v1`, mnt, ['--cache-dir', join(dir.path, 'cache2'), '--log-level', 'warn']);
  try {
    await assert.rejects(readFile(join(mnt, 'rootfs', probe)), /EIO/);
    assert.equal(await readFile(join(mnt, 'rootfs/etc/os-release'), 'utf8'), await readFile('/etc/os-release', 'utf8'));
    await waitForMatch(() => m.stderr(), /hashes to sha256:[0-9a-f]{64}, the TOC says sha256:0{64}; refused/);
  } finally {
    assert.deepEqual(await m.stop(), [0, null]);
  }
});

test('eStargz: a TOC that does not match its annotation, or a footer pointing outside the blob, reads EIO', async () => {
  const badFooter = Buffer.from(esgz);
  // Same 51-byte footer with a TOC offset far beyond the blob; the gzip CRC of an empty member is unaffected.
  badFooter.write('00000000ffffffff', badFooter.length - 51 + 16, 'latin1');
  await pushRawImage(reg.url, 'e2e/esgz-bad-toc', 'v1', [
    { data: esgz, mediaType: GZ, annotations: { [TOC]: `sha256:${'1'.repeat(64)}` } },
    { data: badFooter, mediaType: GZ, annotations: { [TOC]: tocDigest } },
  ]);
  const mnt = await mountpoint('esgz-toc');
  const m = await startMount(`${reg.host}/e2e/esgz-bad-toc:v1`, mnt, ['--cache-dir', join(dir.path, 'cache3'), '--log-level', 'warn']);
  try {
    const layers = (await run('ls', [join(mnt, 'layers')])).stdout.trim().split('\n');
    assert.equal(layers.length, 2);
    for (const l of layers) await assert.rejects(run('ls', [join(mnt, 'layers', l)]), /Input\/output error/);
    await assert.rejects(run('ls', [join(mnt, 'rootfs')]), /Input\/output error/);
    await waitForMatch(() => m.stderr(), /does not match the annotation sha256:1{64}/);
    await waitForMatch(() => m.stderr(), /TOC offset 4294967295 is outside the blob/);
  } finally {
    assert.deepEqual(await m.stop(), [0, null]);
  }
});
