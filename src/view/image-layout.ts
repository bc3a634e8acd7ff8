import { join } from 'node:path';
import type { PrefetchingBlobReader } from '../lib/blob-reader.js';
import type { Digest } from '../lib/digest.js';
import type { ImageTrees } from '../image/image-trees.js';
import type { ImageNode } from '../image/tree.js';
import { toFsTree } from './fs-tree.js';
import { type FileContent, type FsNode, InodeAllocator, bytesContent, makeDir, makeFile } from '../fs/node.js';

/** What the mount shows of one image, independent of where it came from. */
export interface ImageDescription {
  manifestBytes: Buffer;
  configBytes: Buffer;
  configDigest: Digest;
  /** Config and layers, each once. */
  blobs: { digest: Digest; size: number }[];
  /** Image creation time (config `created`) for directory mtimes; 0 when unknown. */
  createdMs: number;
}

export type { PrefetchingBlobReader } from '../lib/blob-reader.js';

export function blobContent(reader: PrefetchingBlobReader, digest: Digest, size: number): FileContent {
  const content: FileContent = {
    size,
    read: (offset, into, signal) => reader.readAt(digest, offset, into, signal),
  };
  if (reader.prefetch) {
    const prefetch = reader.prefetch.bind(reader);
    content.prefetch = (offset, length, near) => void prefetch(digest, offset, length, size, near).catch(() => {});
  }
  return content;
}

/**
 * `<mnt>/manifest.json`, `<mnt>/config.json`, `<mnt>/blobs/<digest>`; listing and stat need no
 * blob data (sizes come from the manifest).
 */
export function buildImageLayout(img: ImageDescription, reader: PrefetchingBlobReader, inodes = new InodeAllocator(), rootIno = 1): FsNode {
  const t = { mtimeMs: img.createdMs };
  const root = makeDir(rootIno, t);
  const blobs = makeDir(inodes.allocate(), t);
  root.children!.set('manifest.json', makeFile(inodes.allocate(), bytesContent(img.manifestBytes), t));
  root.children!.set('config.json', makeFile(inodes.allocate(), bytesContent(img.configBytes), t));
  root.children!.set('blobs', blobs);
  for (const b of img.blobs) {
    if (blobs.children!.has(b.digest)) continue;
    // The config is already in memory, verified: no reason to fetch it again.
    const content = b.digest === img.configDigest ? bytesContent(img.configBytes) : blobContent(reader, b.digest, b.size);
    blobs.children!.set(b.digest, makeFile(inodes.allocate(), content, t));
  }
  root.nlink = 3;
  return root;
}

/**
 * The `lowerdir=` option value that stacks `dirs` (bottom layer first, as in the manifest) with
 * overlayfs: top layer first, ':' separating them. overlayfs drops a backslash before any
 * character (fs/overlayfs/params.c, ovl_unescape), so ':' in a path (every digest has one), ','
 * (the mount option separator) and the backslash itself are escaped.
 */
export function overlayLowerdir(dirs: string[]): string {
  return [...dirs]
    .reverse()
    .map((d) => d.replace(/[\\:,]/g, (c) => `\\${c}`))
    .join(':');
}

/**
 * Adds `layers/<digest>/` (each layer as an overlayfs lower dir) and `rootfs/` (the merged tree).
 * Both are lazy: nothing is indexed until someone looks inside or stats them. With `imageDir` (the absolute
 * path where this image's directory appears) also `lowerdir`: the ready `lowerdir=` value for
 * `mount -t overlay`, in manifest order (digest order, what `ls layers/` gives, is not it).
 */
export function addImageTrees(root: FsNode, trees: ImageTrees, inodes: InodeAllocator, imageDir?: string): void {
  const t = { mtimeMs: root.mtimeMs };
  const contentOf = (n: ImageNode): FileContent => {
    const layer = trees.layers[n.data!.layer]!;
    const entry = n.data!.entry;
    return { size: entry.size, read: (offset, into, signal) => layer.read(entry, offset, into, signal) };
  };
  const fill = (dir: FsNode, tree: () => Promise<ImageNode>): void => {
    dir.attrsFromLoad = true;
    dir.load = async () => {
      const built = toFsTree(await tree(), inodes, contentOf, dir.ino);
      Object.assign(dir, { mode: built.mode, uid: built.uid, gid: built.gid, mtimeMs: built.mtimeMs, nlink: built.nlink, children: built.children, xattrs: built.xattrs });
    };
  };
  const layers = makeDir(inodes.allocate(), t);
  // A tree root's attributes are the `./` entry's (or, without one, what umoci and Docker give:
  // 0755 root); getattr waits for the load (attrsFromLoad), so these placeholders are never shown.
  const treeRoot = { ...t, mode: 0o755 };
  trees.layers.forEach((layer, i) => {
    const d = makeDir(inodes.allocate(), treeRoot);
    fill(d, () => trees.layerTree(i));
    layers.children!.set(layer.descriptor.digest, d);
    layers.nlink++;
  });
  const rootfs = makeDir(inodes.allocate(), treeRoot);
  fill(rootfs, () => trees.rootfs());
  root.children!.set('layers', layers);
  root.children!.set('rootfs', rootfs);
  root.nlink += 2;
  if (imageDir !== undefined) {
    const value = overlayLowerdir(trees.layers.map((l) => join(imageDir, 'layers', l.descriptor.digest)));
    root.children!.set('lowerdir', makeFile(inodes.allocate(), bytesContent(Buffer.from(value, 'utf8')), t));
  }
}
