import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ReadOnlyFilesystem } from '../../src/fs/filesystem.js';
import { InodeAllocator, bytesContent, makeDir, makeFile } from '../../src/fs/node.js';
import { silentLogger } from '../../src/lib/logger.js';
import { parseReference } from '../../src/registry/index.js';
import type { StoredImage } from '../../src/view/image-store.js';
import { LayerStore } from '../../src/view/layer-store.js';

const d = (c: string): string => `sha256:${c.repeat(64)}`;
const GZ = 'application/vnd.oci.image.layer.v1.tar+gzip';
const TOC = 'containerd.io/snapshot/stargz/toc.digest';

/** An image as the serve store holds it, with `layers/<d>` and `blobs/<d>` nodes to share. */
function fakeImage(refText: string, inodes: InodeAllocator): StoredImage {
  const layers = [
    { digest: d('a'), size: 100, mediaType: GZ },
    { digest: d('b'), size: 200, mediaType: GZ, annotations: { [TOC]: d('c') } },
    { digest: d('e'), size: 300, mediaType: 'application/vnd.example.unknown' },
  ];
  const root = makeDir(inodes.allocate());
  const layerDirs = makeDir(inodes.allocate());
  const blobs = makeDir(inodes.allocate());
  for (const l of layers) {
    layerDirs.children!.set(l.digest, makeDir(inodes.allocate()));
    blobs.children!.set(l.digest, makeFile(inodes.allocate(), bytesContent(Buffer.alloc(l.size))));
  }
  root.children!.set('layers', layerDirs);
  root.children!.set('blobs', blobs);
  return {
    ref: parseReference(refText),
    img: { manifest: { layers }, config: { rootfs: { diff_ids: [d('1'), d('2'), d('3')] } } },
    path: [],
    node: root,
    layers: [],
    lastUsed: 0,
  } as unknown as StoredImage;
}

function setup(open?: (ref: string) => Promise<StoredImage>, resolveDeadlineMs = 1000): { fs: ReadOnlyFilesystem; store: LayerStore; opened: string[]; images: Map<string, StoredImage> } {
  const inodes = new InodeAllocator();
  const images = new Map<string, StoredImage>();
  const opened: string[] = [];
  const store = new LayerStore({
    inodes,
    log: silentLogger,
    resolveDeadlineMs,
    open:
      open ??
      (async (ref) => {
        opened.push(ref);
        if (ref.includes('missing')) throw new Error('manifest unknown');
        let s = images.get(ref);
        if (!s) images.set(ref, (s = fakeImage(ref, inodes)));
        return s;
      }),
  });
  return { fs: new ReadOnlyFilesystem(store.root), store, opened, images };
}

const b64 = (ref: string): string => Buffer.from(ref).toString('base64');

test('ASCII never base64-encodes to "/" where a reference can put it: every reference is one path component', async () => {
  // StdEncoding writes "/" for a 6-bit group of 63: from ASCII only a third byte of "?" or DEL.
  for (let c = 0x20; c < 0x7f; c++) {
    for (const pre of ['', 'a', 'ab']) {
      const enc = Buffer.from(`${pre}${String.fromCharCode(c)}`).toString('base64');
      assert.equal(enc.includes('/'), pre.length === 2 && c === 0x3f, `${pre}${String.fromCharCode(c)} → ${enc}`);
    }
  }
  const { fs, opened, images } = setup();
  const ref = 'registry.example:5000/team/app:v1@sha256:' + 'f'.repeat(64);
  const info = JSON.parse(await readInfo(fs, `/${b64(ref)}/${d('a')}/info`)) as Record<string, unknown>;
  assert.equal(info['diff-digest'], d('1'));
  assert.deepEqual(opened, [ref]);
  assert.equal((await fs.lookup(`/${b64(ref)}/${d('a')}/diff`)).ino, images.get(ref)!.node.children!.get('layers')!.children!.get(d('a'))!.ino, "diff/ is the store's layers/<d> node");
});

test('stat of diff/ does not load the layer tree (containers/storage stats it at pull time); a look inside loads it once for both mounts', async () => {
  const { fs, images } = setup();
  const ref = 'registry.example/app:1';
  await fs.lookup(`/${b64(ref)}/${d('a')}`);
  const tree = images.get(ref)!.node.children!.get('layers')!.children!.get(d('a'))!;
  let loads = 0;
  tree.attrsFromLoad = true;
  tree.load = async () => {
    loads++;
    tree.children!.set('etc', makeDir(999));
    tree.mode = 0o711;
  };
  const st = await fs.getattr(`/${b64(ref)}/${d('a')}/diff`);
  assert.equal(loads, 0);
  assert.equal(st.mode & 0o7777, 0o555);
  assert.deepEqual((await fs.readdir(`/${b64(ref)}/${d('a')}/diff`)).names, ['.', '..', 'etc']);
  assert.equal((await fs.getattr(`/${b64(ref)}/${d('a')}/diff`)).mode & 0o7777, 0o711, 'after the load the root has the tree\'s attributes');
  await fs.readdir(`/${b64(ref)}/${d('b')}/diff`);
  const other = new ReadOnlyFilesystem(images.get(ref)!.node);
  assert.deepEqual((await other.readdir(`/layers/${d('a')}`)).names, ['.', '..', 'etc']);
  assert.equal(loads, 1, 'the store mount reuses the load');
});

async function readInfo(fs: ReadOnlyFilesystem, path: string): Promise<string> {
  const fh = await fs.open(path, 0);
  const buf = Buffer.alloc(4096);
  const n = await fs.read(fh, 0, buf, new AbortController().signal);
  fs.release(fh);
  return buf.subarray(0, n).toString();
}

test('one layer under its digest and its TOC digest: same diff/ and blob, info per key; 3 names in the dir', async () => {
  const { fs } = setup();
  const ref = 'registry.example/app:1';
  const byDigest = await fs.lookup(`/${b64(ref)}/${d('b')}`);
  const byToc = await fs.lookup(`/${b64(ref)}/${d('c')}`);
  assert.equal(byDigest.children!.get('diff')!.ino, byToc.children!.get('diff')!.ino);
  assert.equal(byDigest.children!.get('blob'), byToc.children!.get('blob'));
  assert.deepEqual((await fs.readdir(`/${b64(ref)}/${d('c')}`)).names.sort(), ['.', '..', 'blob', 'diff', 'info']);
  assert.deepEqual(JSON.parse(await readInfo(fs, `/${b64(ref)}/${d('c')}/info`)), {
    'toc-digest': d('c'),
    'compressed-size': 200,
    'diff-size': -1,
    compression: 2,
    flags: { 'expected-layer-diffid': d('2') },
  });
  assert.deepEqual(JSON.parse(await readInfo(fs, `/${b64(ref)}/${d('b')}/info`)), {
    'compressed-diff-digest': d('b'),
    'compressed-size': 200,
    'diff-digest': d('2'),
    'toc-digest': d('c'),
    compression: 2,
    flags: { 'expected-layer-diffid': d('2') },
  });
});

test('ENOENT for: an unknown digest, a layer format regfs cannot read, an image that does not resolve, text that is not base64', async () => {
  const { fs } = setup();
  const ref = 'registry.example/app:1';
  for (const path of [`/${b64(ref)}/${d('f')}`, `/${b64(ref)}/${d('e')}`, `/${b64('registry.example/missing:1')}/${d('a')}`, `/not-base64!/${d('a')}`, `/${b64('not a reference')}/${d('a')}`]) {
    await assert.rejects(fs.lookup(path), { errno: 'ENOENT' }, path);
  }
});

test('an image that resolves later than the deadline is ENOENT within it; the next lookup gets the finished resolution', async () => {
  const inodes = new InodeAllocator();
  let calls = 0;
  const s = fakeImage('registry.example/slow:1', inodes);
  let resolved = false;
  // As ImageStore.open: the first call resolves over the network, later ones find the image.
  const { fs } = setup(async () => {
    calls++;
    if (!resolved) await new Promise((r) => setTimeout(r, 300));
    resolved = true;
    return s;
  }, 50);
  const started = Date.now();
  await assert.rejects(fs.lookup(`/${b64('registry.example/slow:1')}/${d('a')}/info`), { errno: 'ENOENT' });
  assert.ok(Date.now() - started < 250, `answered in ${Date.now() - started} ms`);
  await new Promise((r) => setTimeout(r, 300));
  // The miss is not remembered: the next lookup asks again and finds the resolved image.
  assert.equal((await fs.getattr(`/${b64('registry.example/slow:1')}/${d('a')}/info`)).size > 0, true);
  assert.equal(calls, 2);
});

test('create of <layer>/use counts a use, rmdir of <layer> releases it, both answer ENOENT; other creates are EROFS or uncounted', async () => {
  const { fs, store } = setup();
  const ref = 'registry.example/app:1';
  const layer = `/${b64(ref)}/${d('a')}`;
  await fs.lookup(layer);
  await assert.rejects(fs.create(`${layer}/use`), { errno: 'ENOENT' });
  await assert.rejects(fs.create(`${layer}/use`), { errno: 'ENOENT' });
  // The TOC name of layer b counts for layer b.
  await fs.lookup(`/${b64(ref)}/${d('c')}`);
  await assert.rejects(fs.create(`/${b64(ref)}/${d('c')}/use`), { errno: 'ENOENT' });
  assert.deepEqual(store.list(), [
    { ref: 'registry.example/app:1', layer: d('a'), uses: 2 },
    { ref: 'registry.example/app:1', layer: d('b'), uses: 1 },
  ]);
  assert.equal(store.inUse('registry.example/app:1'), true);
  await assert.rejects(fs.create(`${layer}/other`), { errno: 'ENOENT' });
  await assert.rejects(fs.create('/new-file'), { errno: 'EROFS' });
  await assert.rejects(fs.create(`${layer}/diff/x`), { errno: 'EROFS' });
  await assert.rejects(fs.rmdir(layer), { errno: 'ENOENT' });
  await assert.rejects(fs.rmdir(layer), { errno: 'ENOENT' });
  await assert.rejects(fs.rmdir(`/${b64(ref)}/${d('c')}`), { errno: 'ENOENT' });
  await new Promise((r) => setImmediate(r));
  assert.deepEqual(store.list(), []);
  assert.equal(store.inUse('registry.example/app:1'), false);
  await assert.rejects(fs.rmdir(`/${b64(ref)}`), { errno: 'EROFS' });
});
