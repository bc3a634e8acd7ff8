import type { BlobReader } from '../lib/blob-reader.js';
import type { Digest } from '../lib/digest.js';
import type { ImageTrees } from '../image/image-trees.js';
import type { ImageNode } from '../image/tree.js';
import { toFsTree } from './image-tree.js';
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

/** A blob reader that can also fetch ahead (the chunk reader). */
export interface PrefetchingBlobReader extends BlobReader {
  prefetch?(digest: Digest, offset: number, length: number, size: number, near?: boolean): Promise<void>;
}

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
 * Adds `layers/<digest>/` (each layer as an overlayfs lower dir) and `rootfs/` (the merged tree).
 * Both are lazy: nothing is indexed until someone looks inside.
 */
export function addImageTrees(root: FsNode, trees: ImageTrees, inodes: InodeAllocator): void {
  const t = { mtimeMs: root.mtimeMs };
  const contentOf = (n: ImageNode): FileContent => {
    const layer = trees.layers[n.data!.layer]!;
    const entry = n.data!.entry;
    return { size: entry.size, read: (offset, into, signal) => layer.read(entry, offset, into, signal) };
  };
  const fill = (dir: FsNode, tree: () => Promise<ImageNode>): void => {
    dir.load = async () => {
      const built = toFsTree(await tree(), inodes, contentOf, dir.ino);
      Object.assign(dir, { mode: built.mode, uid: built.uid, gid: built.gid, mtimeMs: built.mtimeMs, nlink: built.nlink, children: built.children, xattrs: built.xattrs });
    };
  };
  const layers = makeDir(inodes.allocate(), t);
  trees.layers.forEach((layer, i) => {
    const d = makeDir(inodes.allocate(), t);
    fill(d, () => trees.layerTree(i));
    layers.children!.set(layer.descriptor.digest, d);
    layers.nlink++;
  });
  const rootfs = makeDir(inodes.allocate(), t);
  fill(rootfs, () => trees.rootfs());
  root.children!.set('layers', layers);
  root.children!.set('rootfs', rootfs);
  root.nlink += 2;
}
