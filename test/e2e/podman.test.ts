import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { type LayerFormat, type RunnableImage, pushStagedImage, stageLayers } from '../helpers/container-image.js';
import { type FaultProxy, startFaultProxy } from '../helpers/fault-proxy.js';
import { CLI, forceUnmount } from '../helpers/mount.js';
import { type Podman, blobBytes, setupPodman } from '../helpers/podman.js';
import { type RunningRegistry, startRegistry } from '../helpers/registry.js';
import { tempDir, waitFor } from '../helpers/tmp.js';

const run = promisify(execFile);
const SCRIPTS = join(import.meta.dirname, '../../../scripts');

let dir: { path: string; cleanup: () => Promise<void> };
let reg: RunningRegistry;
let proxy: FaultProxy;
let serve: ChildProcess | undefined;
let serveErr = '';
let podman: Podman;
const store = (): string => join(dir.path, 'store');
const layerStore = (): string => join(dir.path, 'layers');
/** The three formats, and the gzip image again with a SOCI index attached (\`regfs index push --v1\`, #14/#18). */
type Case = LayerFormat | 'gzip+soci';
const images = new Map<Case, RunnableImage>();
/** zTOC blobs of the gzip+soci image's SOCI index: fetched bytes of them count too. */
let ztocs: { digest: string; size: number }[] = [];
const osRelease = (): Promise<string> => readFile('/etc/os-release', 'utf8');

before(async () => {
  dir = await tempDir('e2e-podman');
  reg = await startRegistry({ root: join(dir.path, 'registry'), workDir: dir.path });
  proxy = await startFaultProxy(reg.url);
  const convert = join(dir.path, 'estargz-convert');
  await run(join(SCRIPTS, 'build-estargz-convert.sh'), [convert]);
  const stages = await stageLayers(dir.path);
  for (const format of ['tar', 'gzip', 'estargz'] as const) {
    images.set(format, await pushStagedImage(reg.url, proxy.host, 'podman/app', stages, format, dir.path, convert));
  }
  // Same trees plus one marker file, so its layer digests differ from the plain gzip image's and
  // nothing of it is in serve's chunk cache when its test starts.
  const sociStages = await stageLayers(join(dir.path, 'soci'));
  for (const s of sociStages) await writeFile(join(s, '.soci-marker'), 'gzip+soci\n');
  const sociImg = await pushStagedImage(reg.url, proxy.host, 'podman/soci', sociStages, 'gzip', join(dir.path, 'soci'));
  images.set('gzip+soci', sociImg);
  const { stdout: sociIndex } = await run('node', [CLI, 'index', 'push', `${reg.host}/podman/soci:gzip`, '--v1', '--cache-dir', join(dir.path, 'cache-index'), '--log-level', 'warn']);
  const indexManifest = JSON.parse(await (await fetch(`${reg.url}/v2/podman/soci/manifests/${sociIndex.trim()}`, { headers: { accept: 'application/vnd.oci.image.manifest.v1+json' } })).text()) as { layers: { digest: string; size: number; annotations: Record<string, string> }[] };
  ztocs = indexManifest.layers.map((l) => ({ digest: l.digest, size: l.size }));
  // The app layer (~70 MB of binaries) gets a zTOC; the small base and top layers stay below SOCI's 10 MiB minimum.
  assert.deepEqual(indexManifest.layers.map((l) => l.annotations['com.amazon.soci.image-layer-digest']), [sociImg.layers[1]!.digest]);
  const cfg = join(dir.path, 'serve.json');
  await writeFile(cfg, JSON.stringify({ store: store(), layerStore: layerStore(), cacheDir: join(dir.path, 'cache'), logLevel: 'info' }));
  const child = spawn('node', [CLI, 'serve', '--config', cfg], { stdio: ['ignore', 'pipe', 'pipe'] });
  serve = child;
  let out = '';
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (serveErr += d.toString()));
  await waitFor('regfs serve ready', async () => {
    if (child.exitCode !== null) throw new Error(`serve exited: ${serveErr}`);
    return out.includes('regfs: serving');
  });
  podman = await setupPodman(join(dir.path, 'podman'), { insecureRegistry: proxy.host, layerStore: layerStore() });
});

after(async () => {
  if (process.env['REGFS_TEST_DEBUG']) process.stderr.write(serveErr);
  await podman?.cleanup();
  if (serve && serve.exitCode === null) {
    const exited = new Promise((r) => serve!.once('exit', r));
    serve.kill('SIGTERM');
    await exited;
  }
  await forceUnmount(layerStore());
  await forceUnmount(store());
  await proxy?.close();
  await reg?.stop();
  await dir?.cleanup();
});

/** Layer-blob bytes the registry served since request number `from`. */
const layerBytesSince = (img: RunnableImage, from: number): number => blobBytes(proxy.requests.slice(from), img.layers);

async function ctlLs(): Promise<{ ref: string; layersInUse: { layer: string; uses: number }[] }[]> {
  const { stdout } = await run('node', [CLI, 'ctl', 'ls', '--control', join(dir.path, 'cache', 'control.sock')]);
  return JSON.parse(stdout) as { ref: string; layersInUse: { layer: string; uses: number }[] }[];
}

for (const format of ['tar', 'estargz', 'gzip', 'gzip+soci'] as const) {
  test(`podman 4.3 (${format} image): pull moves 0 layer-blob bytes, run prints /etc/os-release, the whiteout holds, writes land in podman's upper dir`, async (t) => {
    const img = images.get(format)!;
    const start = proxy.requests.length;
    await podman.run(['pull', img.ref]);
    assert.equal(layerBytesSince(img, start), 0, 'podman pull fetched no layer-blob bytes (neither podman nor regfs)');
    assert.equal(proxy.requests.slice(start).filter((r) => img.layers.some((l) => r.path.endsWith(`/blobs/${l.digest}`))).length, 0);

    // containers/storage marked each of the 3 layers in use (`use`), and holds them after the pull.
    const held = (await ctlLs()).find((e) => e.ref === img.ref)!;
    assert.deepEqual(held.layersInUse.map((u) => u.layer).sort(), img.layers.map((l) => l.digest).sort());

    const cat = await podman.run(['run', '--rm', img.ref, 'cat', '/etc/os-release']);
    assert.equal(cat.stdout, await osRelease());
    const ls = await podman.run(['run', '--rm', img.ref, 'ls', '/etc']);
    assert.deepEqual(ls.stdout.trim().split('\n').sort(), ['group', 'hostname', 'hosts', 'motd', 'mtab', 'os-release', 'passwd'], 'to-delete is whited out by the top layer');
    // zTOC bytes count as fetched too (the gzip+soci image's price for lazy reads).
    const fetched = layerBytesSince(img, start) + blobBytes(proxy.requests.slice(start), format === 'gzip+soci' ? ztocs : []);
    t.diagnostic(`${format}: pull + 2 runs fetched ${fetched} of ${img.bytes} layer bytes (${((100 * fetched) / img.bytes).toFixed(1)}%)`);
    if (format === 'gzip') {
      // A gzip layer is indexed by one pass over it on first use (README "Layer formats"):
      // what is touched is fetched whole, once; the untouched app layer stays unfetched only if
      // nothing looks into it, and overlayfs looks up names in every lower dir.
      assert.ok(fetched <= img.bytes, `gzip: each layer at most once (${fetched} ≤ ${img.bytes})`);
    } else {
      assert.ok(fetched < 0.2 * img.bytes, `${format}: ${fetched} bytes is < 20% of the image's ${img.bytes}`);
    }
    if (format === 'gzip+soci') {
      // The layer store found the SOCI index through the referrers tag and served the app layer from its zTOC.
      const served = serveErr.split('\n').filter((l) => l.includes('"layer served"')).map((l) => JSON.parse(l) as { layer: string; how: string });
      assert.deepEqual(served.filter((l) => l.layer === img.layers[1]!.digest).map((l) => l.how), ['soci']);
    }

    const name = `w-${format.replace('+', '-')}`;
    await podman.run(['run', '--name', name, img.ref, 'sh', '-c', 'echo written > /etc/new-file && echo appended >> /etc/os-release && cat /etc/new-file']);
    const { stdout: upper } = await podman.run(['inspect', name, '--format', '{{.GraphDriver.Data.UpperDir}}']);
    const upperDir = upper.trim();
    assert.ok(upperDir.startsWith(podman.graphroot), `the upper dir ${upperDir} is podman's own`);
    assert.equal(await readFile(join(upperDir, 'etc/new-file'), 'utf8'), 'written\n');
    assert.equal(await readFile(join(upperDir, 'etc/os-release'), 'utf8'), `${await osRelease()}appended\n`);
    // The layer in the store is untouched.
    const b64 = Buffer.from(img.ref).toString('base64');
    const base = join(layerStore(), b64, img.layers[0]!.digest, 'diff');
    assert.equal(await readFile(join(base, 'etc/os-release'), 'utf8'), await osRelease());
    assert.deepEqual((await readdir(join(base, 'etc'))).sort(), ['group', 'os-release', 'passwd', 'to-delete']);
    await podman.run(['rm', name]);

    await podman.run(['rmi', img.ref]);
    const after = (await ctlLs()).find((e) => e.ref === img.ref)!;
    assert.deepEqual(after.layersInUse, [], 'podman rmi released every layer (rmdir of the layer dir)');
  });
}

test('layer store lookups: by TOC digest the info names the TOC and no digests; an unknown image or layer is ENOENT at once', async () => {
  const img = images.get('estargz')!;
  const b64 = Buffer.from(img.ref).toString('base64');
  const l = img.layers[1]!;
  const byToc = JSON.parse(await readFile(join(layerStore(), b64, l.tocDigest!, 'info'), 'utf8')) as Record<string, unknown>;
  assert.deepEqual(byToc, { 'toc-digest': l.tocDigest, 'compressed-size': l.size, 'diff-size': -1, compression: 2, flags: { 'expected-layer-diffid': l.diffId } });
  const byDigest = JSON.parse(await readFile(join(layerStore(), b64, l.digest, 'info'), 'utf8')) as Record<string, unknown>;
  assert.deepEqual(byDigest, {
    'compressed-diff-digest': l.digest,
    'compressed-size': l.size,
    'diff-digest': l.diffId,
    'toc-digest': l.tocDigest,
    compression: 2,
    flags: { 'expected-layer-diffid': l.diffId },
  });
  assert.deepEqual((await readdir(join(layerStore(), b64, l.tocDigest!))).sort(), ['blob', 'diff', 'info']);
  const tar = images.get('tar')!;
  const tarInfo = JSON.parse(await readFile(join(layerStore(), Buffer.from(tar.ref).toString('base64'), tar.layers[0]!.digest, 'info'), 'utf8')) as Record<string, unknown>;
  assert.equal(tarInfo['diff-size'], tar.layers[0]!.size, 'a plain tar layer knows its uncompressed size');
  assert.equal(tarInfo['compression'], undefined, 'uncompressed (0) is left out, as Go omits it');

  const started = Date.now();
  const missing = Buffer.from(`${proxy.host}/podman/nothing:v1`).toString('base64');
  await assert.rejects(readFile(join(layerStore(), missing, l.digest, 'info')), { code: 'ENOENT' });
  await assert.rejects(readFile(join(layerStore(), b64, `sha256:${'0'.repeat(64)}`, 'info')), { code: 'ENOENT' });
  await assert.rejects(readFile(join(layerStore(), 'not base64!', l.digest, 'info')), { code: 'ENOENT' });
  assert.ok(Date.now() - started < 2000, `three misses answered in ${Date.now() - started} ms`);
});
