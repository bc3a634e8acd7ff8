import type { ImageNode } from '../image/tree.js';
import { type FileContent, type FsNode, InodeAllocator } from '../fs/node.js';

/** makedev(3) for Linux: the rdev FUSE passes to the kernel. */
function makedev(major: number, minor: number): number {
  return ((major & 0xfff) << 8) | (minor & 0xff) | ((minor & ~0xff) << 12);
}

/**
 * The three node shapes, each for one stage: `TarEntry` (image/tar-entry.ts) is a header as
 * parsed from a layer; `ImageNode` (image/tree.ts) is a node of a layer or merged tree, whiteouts
 * applied; `FsNode` (fs/node.ts) is what the FUSE-free core serves, with an inode and content.
 * This file is the one step from the second to the third.
 *
 * One view (a layer, or the merged rootfs) of an image tree as FsNodes. Nodes shared within the
 * view (hardlinks) become one FsNode: same inode, nlink = number of names.
 */
export function toFsTree(root: ImageNode, inodes: InodeAllocator, contentOf: (n: ImageNode) => FileContent, rootIno?: number): FsNode {
  const seen = new Map<ImageNode, FsNode>();
  const convert = (n: ImageNode, ino?: number): FsNode => {
    const existing = seen.get(n);
    if (existing) {
      existing.nlink++;
      return existing;
    }
    const kind = n.type === 'dir' ? 'dir' : n.type;
    const node: FsNode = {
      ino: ino ?? inodes.allocate(),
      kind,
      mode: n.mode,
      uid: n.uid,
      gid: n.gid,
      mtimeMs: n.mtimeMs,
      nlink: n.type === 'dir' ? 2 : 1,
      rdev: kind === 'chardev' || kind === 'blockdev' ? makedev(n.devmajor, n.devminor) : 0,
      size: n.type === 'dir' ? 4096 : n.type === 'file' ? n.size : n.type === 'symlink' ? n.linkname.length : 0,
    };
    if (n.xattrs.size) node.xattrs = n.xattrs;
    if (n.type === 'symlink') node.target = n.linkname;
    if (n.type === 'file') node.content = contentOf(n);
    seen.set(n, node);
    if (n.children) {
      node.children = new Map();
      for (const [name, c] of n.children) {
        const child = convert(c);
        node.children.set(name, child);
        if (child.kind === 'dir') node.nlink++;
      }
    }
    return node;
  };
  return convert(root, rootIno);
}
