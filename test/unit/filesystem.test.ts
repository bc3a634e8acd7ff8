import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ReadOnlyFilesystem } from '../../src/fs/filesystem.js';
import { addImageTrees, buildImageLayout } from '../../src/view/image-layout.js';
import type { ImageTrees } from '../../src/image/image-trees.js';
import type { ImageNode } from '../../src/image/tree.js';
import { SequentialReadahead } from '../../src/fs/readahead.js';
import { InodeAllocator, makeDir, makeFile, bytesContent, S_IFDIR, S_IFREG } from '../../src/fs/node.js';
import { ChunkReader } from '../../src/blob/chunk-reader.js';
import { BlockStore } from '../../src/cache/block-store.js';
import { CountingUpstream } from '../helpers/fake-upstream.js';
import { patternBytes } from '../helpers/images.js';
import { tempDir } from '../helpers/tmp.js';

const MiB = 1 << 20;

test('the image layout lists and stats without reading blob data', async () => {
  const up = new CountingUpstream();
  const layer = patternBytes(3 * MiB, 1);
  const d = up.add(layer);
  const cfgBytes = Buffer.from('{"os":"linux"}');
  const c = up.add(cfgBytes);
  const root = buildImageLayout({ manifestBytes: Buffer.from('{}'), configBytes: cfgBytes, configDigest: c, blobs: [{ digest: c, size: cfgBytes.length }, { digest: d, size: layer.length }, { digest: d, size: layer.length }], createdMs: 1000 }, up);
  const fs = new ReadOnlyFilesystem(root);
  const { names } = await fs.readdir('/blobs');
  assert.deepEqual(names.sort(), ['.', '..', c, d].sort());
  const st = await fs.getattr(`/blobs/${d}`);
  assert.equal(st.size, layer.length);
  assert.equal(st.mode, S_IFREG | 0o444);
  assert.equal((await fs.getattr('/')).mode, S_IFDIR | 0o555);
  assert.equal(up.requests.length, 0);
  const fh = await fs.open(`/blobs/${d}`, 0);
  const buf = Buffer.alloc(1000);
  assert.equal(await fs.read(fh, 5000, buf, new AbortController().signal), 1000);
  assert.ok(buf.equals(layer.subarray(5000, 6000)));
  assert.equal(await fs.read(fh, layer.length, buf, new AbortController().signal), 0);
  fs.release(fh);
});

test('errors carry the errno the kernel should see', async () => {
  const root = makeDir(1);
  root.children!.set('f', makeFile(2, bytesContent(Buffer.from('x'))));
  const fs = new ReadOnlyFilesystem(root);
  await assert.rejects(fs.getattr('/nope'), { errno: 'ENOENT' });
  await assert.rejects(fs.getattr('/f/x'), { errno: 'ENOTDIR' });
  await assert.rejects(fs.open('/f', 1), { errno: 'EROFS' });
  await assert.rejects(fs.open('/f', 2), { errno: 'EROFS' });
  await assert.rejects(fs.open('/', 0), { errno: 'EISDIR' });
  await assert.rejects(fs.read(999, 0, Buffer.alloc(1), new AbortController().signal), { errno: 'EBADF' });
  await assert.rejects(fs.readlink('/f'), { errno: 'EINVAL' });
});

test('a lazy directory is loaded once by concurrent lookups, and retried after a failure', async () => {
  const root = makeDir(1);
  const lazy = makeDir(2);
  let loads = 0;
  lazy.load = async () => {
    loads++;
    await new Promise((r) => setTimeout(r, 10));
    if (loads === 1) throw new Error('index not ready');
    lazy.children!.set('a', makeFile(3, bytesContent(Buffer.from('a'))));
  };
  root.children!.set('lazy', lazy);
  const fs = new ReadOnlyFilesystem(root);
  const first = await Promise.allSettled([fs.getattr('/lazy/a'), fs.getattr('/lazy/a'), fs.readdir('/lazy')]);
  assert.deepEqual(first.map((r) => r.status), ['rejected', 'rejected', 'rejected']);
  assert.equal(loads, 1);
  const second = await Promise.all([fs.getattr('/lazy/a'), fs.readdir('/lazy')]);
  assert.equal(second[0].size, 1);
  assert.equal(loads, 2);
  await fs.getattr('/lazy/a');
  assert.equal(loads, 2);
});

test('getattr, getxattr and listxattr of rootfs/ and layers/<d>/ wait for the tree and answer its ./ entry (mode 1777, uid 1000, mtime 1234 s)', async () => {
  const digest = `sha256:${'a'.repeat(64)}`;
  // A tree root as a layer's `./` entry makes it: not the 0755 root placeholder.
  const treeRoot = (): ImageNode => ({
    type: 'dir', mode: 0o1777, uid: 1000, gid: 100, mtimeMs: 1234000, size: 0, linkname: '', devmajor: 0, devminor: 0,
    xattrs: new Map([['user.k', Buffer.from([0, 0xff])]]), children: new Map(),
  });
  const builds: string[] = [];
  const slowly = async (what: string): Promise<ImageNode> => {
    builds.push(what);
    await new Promise((r) => setTimeout(r, 10));
    return treeRoot();
  };
  const trees = {
    layers: [{ descriptor: { digest } }],
    layerTree: (i: number) => slowly(`layer ${i}`),
    rootfs: () => slowly('rootfs'),
  } as unknown as ImageTrees;
  const root = makeDir(1);
  addImageTrees(root, trees, new InodeAllocator());
  const fs = new ReadOnlyFilesystem(root);
  // Listing the parents stats nothing below them: no tree is built.
  assert.deepEqual((await fs.readdir('/')).names.sort(), ['.', '..', 'layers', 'rootfs']);
  assert.deepEqual((await fs.readdir('/layers')).names.sort(), ['.', '..', digest]);
  assert.deepEqual(builds, []);
  const [a, b] = await Promise.all([fs.getattr('/rootfs'), fs.getattr('/rootfs')]);
  assert.deepEqual(builds, ['rootfs']);
  for (const st of [a, b]) {
    assert.equal(st.mode, S_IFDIR | 0o1777);
    assert.equal(st.uid, 1000);
    assert.equal(st.gid, 100);
    assert.equal(st.mtime.getTime(), 1234000);
  }
  assert.deepEqual(await fs.listxattr(`/layers/${digest}`), ['user.k']);
  assert.deepEqual(builds, ['rootfs', 'layer 0']);
  assert.deepEqual(await fs.getxattr(`/layers/${digest}`, 'user.k'), Buffer.from([0, 0xff]));
  assert.equal((await fs.getattr(`/layers/${digest}`)).mode, S_IFDIR | 0o1777);
  assert.deepEqual(builds, ['rootfs', 'layer 0']);
});

test('an aborted read never writes into the caller buffer', async () => {
  const t = await tempDir('abort');
  const store = await BlockStore.open({ dir: t.path, maxBytes: 64 * MiB, blockSize: MiB, lock: true });
  try {
    const up = new CountingUpstream();
    up.delayMs = 50;
    const d = up.add(patternBytes(2 * MiB, 3));
    const reader = new ChunkReader(store, up, { maxRequestBytes: 8 * MiB, globalConcurrency: 4, perBlobConcurrency: 4 });
    const buf = Buffer.alloc(4096);
    const ac = new AbortController();
    const p = reader.readAt(d, 0, buf, ac.signal);
    ac.abort();
    await assert.rejects(p, { code: 'ERR_ABORTED' });
    assert.ok(buf.every((b) => b === 0), 'buffer untouched');
    await reader.flush();
  } finally {
    await store.close();
    await t.cleanup();
  }
});

test('read-ahead: sequential reads grow the window to the maximum; a seek resets it', () => {
  const ra = new SequentialReadahead({ initialWindow: MiB, maxWindow: 32 * MiB });
  const size = 1 << 30;
  assert.equal(ra.onRead(0, 128 << 10, size), undefined, 'the first read is not sequential yet');
  let pos = 128 << 10;
  let requested = 0;
  let maxRequest = 0;
  for (let i = 0; i < 400; i++, pos += 128 << 10) {
    const r = ra.onRead(pos, 128 << 10, size);
    if (r) {
      requested += r.length;
      maxRequest = Math.max(maxRequest, r.length);
    }
  }
  assert.equal(ra.currentWindow, 32 * MiB);
  assert.ok(maxRequest >= 16 * MiB, `largest request ${maxRequest}`);
  assert.ok(requested >= pos - MiB, 'everything read was asked for ahead of time');
  // Out-of-order kernel read-ahead within the slack is still sequential.
  assert.equal(ra.currentWindow, 32 * MiB);
  ra.onRead(pos - (256 << 10), 128 << 10, size);
  assert.equal(ra.currentWindow, 32 * MiB);
  ra.onRead(500 * MiB, 4096, size);
  assert.equal(ra.currentWindow, MiB, 'a seek resets the window');
});

test('xattrs: present ones are returned; missing SELinux and ACL names are "not supported" (ls stops asking), other missing names are absent', async () => {
  const root = makeDir(1);
  root.children!.set('plain', makeFile(2, bytesContent(Buffer.from('x'))));
  root.children!.set('labelled', makeFile(3, bytesContent(Buffer.from('y')), { xattrs: new Map([['security.selinux', Buffer.from('system_u:object_r:bin_t:s0\0')]]) }));
  const fs = new ReadOnlyFilesystem(root);
  for (const name of ['security.selinux', 'system.posix_acl_access', 'system.posix_acl_default']) {
    await assert.rejects(fs.getxattr('/plain', name), (e: { errno?: string }) => e.errno === 'EOPNOTSUPP');
  }
  assert.equal(await fs.getxattr('/plain', 'trusted.overlay.opaque'), undefined);
  assert.deepEqual(await fs.getxattr('/labelled', 'security.selinux'), Buffer.from('system_u:object_r:bin_t:s0\0'));
  assert.deepEqual(await fs.listxattr('/labelled'), ['security.selinux']);
  assert.deepEqual(await fs.listxattr('/plain'), []);
});
