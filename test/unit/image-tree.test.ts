import { test } from 'node:test';
import assert from 'node:assert/strict';
import { type BuildProblem, type ImageNode, OPAQUE_XATTR, buildLayerTree, mergeLayers } from '../../src/image/tree.js';
import type { TarEntry } from '../../src/image/tar-entry.js';
import { overlayLowerdir } from '../../src/view/image-layout.js';
import { ImageTrees } from '../../src/image/image-trees.js';
import type { Layer } from '../../src/image/layer.js';
import type { Digest } from '../../src/lib/digest.js';

function e(path: string, type: TarEntry['type'] = 'file', attrs: Partial<TarEntry> = {}): TarEntry {
  return { path, type, mode: type === 'dir' ? 0o755 : 0o644, uid: 0, gid: 0, size: 0, mtimeMs: 1000, linkname: '', devmajor: 0, devminor: 0, dataOffset: 0, ...attrs };
}

function layer(entries: TarEntry[], i = 0, problems: BuildProblem[] = []): ImageNode {
  return buildLayerTree(entries, i, (p) => problems.push(p));
}

function at(root: ImageNode, path: string): ImageNode | undefined {
  let n: ImageNode | undefined = root;
  for (const c of path.split('/').filter(Boolean)) n = n?.children?.get(c);
  return n;
}

/** Path → "type mode uid:gid mtime" for every node, to compare whole trees. */
function flat(root: ImageNode, prefix = ''): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [name, n] of root.children ?? []) {
    const p = prefix + name;
    const x = [...n.xattrs].map(([k, v]) => `${k}=${v.toString('hex')}`).join(',');
    out[p] = `${n.whiteout ? 'whiteout' : n.type} ${n.mode.toString(8)} ${n.uid}:${n.gid} ${n.mtimeMs}${x ? ` ${x}` : ''}`;
    if (n.type === 'dir' && !n.whiteout) Object.assign(out, flat(n, `${p}/`));
  }
  return out;
}

const base = (): ImageNode =>
  layer([
    e('', 'dir', { mode: 0o755, mtimeMs: 5 }),
    e('tmp', 'dir', { mode: 0o1777, mtimeMs: 111 }),
    e('home', 'dir', { mtimeMs: 222 }),
    e('home/user', 'dir', { mode: 0o700, uid: 1000, gid: 1000, mtimeMs: 333, xattrs: new Map([['user.tag', Buffer.from([0xff])]]) }),
    e('srv', 'dir', { mode: 0o2775, gid: 50, mtimeMs: 444 }),
    e('srv/old', 'file'),
  ]);

test('implied parents keep the lower directory: /tmp stays 1777, /home/user 0700 1000:1000 with its xattr, setgid /srv 2775, mtimes 111/333/444', () => {
  const lower = base();
  const upper = layer([e('tmp/x'), e('home/user/y'), e('srv/new')], 1);
  const merged = mergeLayers([lower, upper]);
  const f = flat(merged);
  assert.equal(f['tmp'], 'dir 1777 0:0 111');
  assert.equal(f['home/user'], 'dir 700 1000:1000 333 user.tag=ff');
  assert.equal(f['srv'], 'dir 2775 0:50 444');
  assert.deepEqual(Object.keys(f).sort(), ['home', 'home/user', 'home/user/y', 'srv', 'srv/new', 'srv/old', 'tmp', 'tmp/x']);
  assert.equal(merged.mtimeMs, 5, 'the root keeps the ./ entry of the lower layer');
  // The layer view carries the same metadata, so overlayfs over layers/ shows what rootfs/ shows.
  assert.equal(flat(upper)['tmp'], 'dir 1777 0:0 111');
  assert.equal(flat(upper)['home/user'], 'dir 700 1000:1000 333 user.tag=ff');
  assert.equal(upper.mtimeMs, 5);
});

test('a directory implied in a layer with nothing below is 0755 root:root mtime 0; an explicit entry later in the layer takes over', () => {
  const l = layer([e('a/b/c'), e('a', 'dir', { mode: 0o750, mtimeMs: 77 })]);
  const merged = mergeLayers([l]);
  assert.equal(flat(merged)['a'], 'dir 750 0:0 77');
  assert.equal(flat(merged)['a/b'], 'dir 755 0:0 0');
});

test('whiteouts and opaque dirs: a whiteout removes the lower entry, .wh..wh..opq hides lower children but keeps the dir metadata, an entry beats its own whiteout', () => {
  const l0 = layer([e('etc', 'dir', { mode: 0o751, mtimeMs: 9 }), e('etc/a'), e('etc/b'), e('opt', 'dir', { mtimeMs: 10 }), e('opt/old'), e('gone', 'dir'), e('gone/x')]);
  const l1 = layer([e('etc/.wh.a'), e('opt/.wh..wh..opq'), e('opt/new'), e('.wh.gone'), e('etc/b'), e('etc/.wh.b')], 1);
  const merged = mergeLayers([l0, l1]);
  assert.deepEqual(Object.keys(flat(merged)).sort(), ['etc', 'etc/b', 'opt', 'opt/new']);
  assert.equal(flat(merged)['opt'], 'dir 755 0:0 10', 'opaque marker in an implied dir: metadata from below, no opaque xattr in rootfs');
  assert.equal(flat(merged)['etc'], 'dir 751 0:0 9');
  // The layer view: whiteouts are 0:0 char devices, the opaque dir carries trusted.overlay.opaque=y.
  assert.equal(at(l1, 'etc/a')?.whiteout, true);
  assert.equal(at(l1, 'etc/a')?.type, 'chardev');
  assert.equal(at(l1, 'opt')?.xattrs.get(OPAQUE_XATTR)?.toString(), 'y');
  assert.equal(at(l1, 'etc/b')?.whiteout, undefined);
});

test('a directory whited out and written into in the same layer is new: opaque, 0755 root, nothing of the lower one', () => {
  const l0 = layer([e('tmp', 'dir', { mode: 0o1777, mtimeMs: 111 }), e('tmp/old')]);
  const l1 = layer([e('.wh.tmp'), e('tmp/new')], 1);
  const merged = mergeLayers([l0, l1]);
  assert.deepEqual(flat(merged), { tmp: 'dir 755 0:0 0', 'tmp/new': 'file 644 0:0 1000' });
  assert.equal(at(l1, 'tmp')?.xattrs.get(OPAQUE_XATTR)?.toString(), 'y');
});

test('layer order decides: the same two layers merged in the other order give the other file', () => {
  const a = () => layer([e('f', 'file', { mtimeMs: 1 })], 0);
  const b = () => layer([e('f', 'file', { mtimeMs: 2 }), e('.wh.g')], 1);
  const g = () => layer([e('g')], 2);
  assert.equal(mergeLayers([a(), b()]).children!.get('f')!.mtimeMs, 2);
  assert.equal(mergeLayers([b(), a()]).children!.get('f')!.mtimeMs, 1);
  assert.equal(mergeLayers([g(), b()]).children!.has('g'), false);
  assert.equal(mergeLayers([b(), g()]).children!.has('g'), true);
});

test('symlinks report mode 0777 whatever the header says; hardlinks across dirs share one node; problems are reported with the entry', () => {
  const problems: BuildProblem[] = [];
  const l = layer(
    [e('a', 'dir'), e('a/f'), e('b/link', 'hardlink', { linkname: 'a/f' }), e('s', 'symlink', { mode: 0o644, linkname: 'caf\xe9' }), e('bad', 'file', { problem: 'sparse map is malformed' })],
    0,
    problems,
  );
  assert.equal(at(l, 'b/link'), at(l, 'a/f'));
  assert.equal(at(l, 's')?.mode, 0o777);
  assert.equal(at(l, 's')?.size, 4, 'a symlink size counts bytes (4), not UTF-8 of the byte name (5)');
  assert.deepEqual(problems, [{ path: 'bad', why: 'sparse map is malformed; reading it fails' }]);
});

test('lowerdir value: manifest order reversed, ":" "," and "\\" escaped with a backslash, nothing else touched', () => {
  assert.equal(
    overlayLowerdir(['/m/layers/sha256:aa', '/m/layers/sha256:bb', '/odd,dir\\x/layers/sha256:cc']),
    '/odd\\,dir\\\\x/layers/sha256\\:cc:/m/layers/sha256\\:bb:/m/layers/sha256\\:aa',
  );
});

function fakeLayer(digest: string, entries: TarEntry[] | Error, calls: { n: number }): Layer {
  return {
    descriptor: { digest: digest as Digest, size: 1, mediaType: 'application/vnd.oci.image.layer.v1.tar' },
    entries: async () => {
      calls.n++;
      if (entries instanceof Error) throw entries;
      return entries;
    },
    read: async () => 0,
  };
}

test('ImageTrees: a layer view gets its implied dirs from the layers below; each layer is indexed once for views and rootfs; errors name the right layer', async () => {
  const calls = { n: 0 };
  const trees = new ImageTrees(
    [
      fakeLayer('sha256:a', [e('tmp', 'dir', { mode: 0o1777, mtimeMs: 111 })], calls),
      fakeLayer('sha256:b', [e('tmp/x')], calls),
    ],
    () => {},
  );
  const top = await trees.layerTree(1);
  assert.equal(flat(top)['tmp'], 'dir 1777 0:0 111');
  assert.equal(flat(await trees.rootfs())['tmp'], 'dir 1777 0:0 111');
  assert.equal(calls.n, 2);

  const broken = new ImageTrees([fakeLayer('sha256:a', [], calls), fakeLayer('sha256:b', new Error('lower broken'), calls), fakeLayer('sha256:c', new Error('top broken'), calls)], () => {});
  await assert.rejects(broken.layerTree(2), /top broken/, "the layer's own error first");
  await assert.rejects(broken.rootfs(), /lower broken/, 'the merge fails at the lowest broken layer');
  assert.deepEqual(Object.keys(flat(await broken.layerTree(0))), []);
});
