/** File types a read-only image filesystem can hold (POSIX S_IF* values). */
export const S_IFMT = 0o170000;
export const S_IFDIR = 0o040000;
export const S_IFREG = 0o100000;
export const S_IFLNK = 0o120000;
export const S_IFCHR = 0o020000;
export const S_IFBLK = 0o060000;
export const S_IFIFO = 0o010000;
export const S_IFSOCK = 0o140000;

export type NodeKind = 'dir' | 'file' | 'symlink' | 'chardev' | 'blockdev' | 'fifo' | 'socket';

const KIND_BITS: Record<NodeKind, number> = {
  dir: S_IFDIR,
  file: S_IFREG,
  symlink: S_IFLNK,
  chardev: S_IFCHR,
  blockdev: S_IFBLK,
  fifo: S_IFIFO,
  socket: S_IFSOCK,
};

export function kindBits(kind: NodeKind): number {
  return KIND_BITS[kind];
}

/** Bytes of a regular file. fs/ never knows where they come from (blob, layer, memory). */
export interface FileContent {
  readonly size: number;
  /**
   * Fills `into` from `offset`. Must not write into `into` once `signal` has aborted: the
   * kernel's buffer is gone by then.
   */
  read(offset: number, into: Uint8Array, signal: AbortSignal): Promise<number>;
  /**
   * Starts fetching [offset, offset+length) in the background (read-ahead); errors are ignored.
   * `near` marks the range right after a sequential reader: worth loading into memory too.
   */
  prefetch?(offset: number, length: number, near?: boolean): void;
}

export interface FsNode {
  readonly ino: number;
  readonly kind: NodeKind;
  /** Permission bits (and setuid/setgid/sticky), without the type. */
  mode: number;
  uid: number;
  gid: number;
  mtimeMs: number;
  nlink: number;
  /** Device number for char/block devices (makedev form). */
  rdev: number;
  size: number;
  target?: string;
  xattrs?: Map<string, Buffer>;
  /** Directory entries; for a lazy directory, filled by `load`. */
  children?: Map<string, FsNode>;
  /** Populates `children` on first use (a layer index being built, an image being resolved). */
  load?: () => Promise<void>;
  /**
   * `load` also sets this directory's own mode, owner, mtime and xattrs (a tree root takes its
   * tar `./` entry): getattr, getxattr and listxattr wait for the load too, since the kernel
   * caches what getattr answers for the whole attr timeout (#11 item 7).
   */
  attrsFromLoad?: boolean;
  /**
   * Resolves a name that is not (yet) a child: the serve store makes `<registry>/<repo>/<tag>`
   * appear on first lookup. The result is added to `children`; undefined means no such entry.
   */
  resolve?: (name: string) => Promise<FsNode | undefined>;
  content?: FileContent;
  /**
   * A name created in this directory (`open(O_CREAT)`) is reported here and answered ENOENT:
   * the additional layer store protocol of containers/storage marks a layer in use by creating
   * `<layer>/use` and expects ENOENT from a store that counts it (overlay.go notifyUseAdditionalLayer).
   * Without the hook a create is EROFS.
   */
  onCreate?: (name: string) => void;
  /** The same for `rmdir` of a child (notifyReleaseAdditionalLayer rmdirs the layer directory). */
  onRemoveChild?: (name: string) => void;
}

/**
 * Runs a lazy node's `load` once: concurrent callers (and every mount that shows the node) share
 * one load; a failed load is retried by the next caller.
 */
export async function loadNode(node: FsNode): Promise<void> {
  if (!node.load) return;
  const load = node.load;
  const n = node as FsNode & { loading?: Promise<void> };
  n.loading ??= load().then(
    () => void (node.load = undefined),
    (e: unknown) => {
      n.loading = undefined;
      throw e;
    },
  );
  await n.loading;
}

/** Hands out inode numbers that stay stable for the life of the mount (32-bit: fuse-native's limit). */
export class InodeAllocator {
  private next = 2;
  allocate(): number {
    if (this.next >= 0xffffffff) throw new Error('inode numbers exhausted');
    return this.next++;
  }
}

export function makeDir(ino: number, attrs: Partial<FsNode> = {}): FsNode {
  return { ino, kind: 'dir', mode: 0o555, uid: 0, gid: 0, mtimeMs: 0, nlink: 2, rdev: 0, size: 4096, children: new Map(), ...attrs };
}

export function makeFile(ino: number, content: FileContent, attrs: Partial<FsNode> = {}): FsNode {
  return { ino, kind: 'file', mode: 0o444, uid: 0, gid: 0, mtimeMs: 0, nlink: 1, rdev: 0, size: content.size, content, ...attrs };
}

/** A file whose bytes are in memory (manifest.json, config.json). */
export function bytesContent(data: Buffer): FileContent {
  return {
    size: data.length,
    async read(offset, into) {
      const part = data.subarray(offset, offset + into.length);
      into.set(part);
      return part.length;
    },
  };
}
