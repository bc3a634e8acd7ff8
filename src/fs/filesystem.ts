import { FsError } from './errno.js';
import { type FsNode, kindBits, loadNode } from './node.js';
import { SequentialReadahead, type ReadaheadPolicy, DEFAULT_READAHEAD } from './readahead.js';

export interface Stat {
  mode: number;
  uid: number;
  gid: number;
  size: number;
  nlink: number;
  ino: number;
  rdev: number;
  blksize: number;
  blocks: number;
  atime: Date;
  mtime: Date;
  ctime: Date;
}

interface Handle {
  node: FsNode;
  readahead: SequentialReadahead;
}

export interface FilesystemOptions {
  readahead?: ReadaheadPolicy;
  /** Observes each read (metrics): bytes returned and how long it took. */
  onRead?: (bytes: number, ms: number, ok: boolean) => void;
}

/** What a sequential reader needs next, kept in memory ahead of it. */
const NEAR_AHEAD = 4 << 20;
const O_ACCMODE = 3;
const NO_NAMES: string[] = [];
const UNSUPPORTED_XATTRS = new Set(['security.selinux', 'system.posix_acl_access', 'system.posix_acl_default']);
const O_RDONLY = 0;

/**
 * A read-only filesystem over a tree of FsNodes, with no FUSE in it: the adapter translates
 * kernel calls into these methods, and tests call them directly (mountpoint-s3 tests its
 * S3Filesystem the same way).
 */
export class ReadOnlyFilesystem {
  private readonly handles = new Map<number, Handle>();
  private nextFh = 1;
  private readonly readaheadPolicy: ReadaheadPolicy;

  constructor(
    readonly root: FsNode,
    private readonly opts: FilesystemOptions = {},
  ) {
    this.readaheadPolicy = opts.readahead ?? DEFAULT_READAHEAD;
  }

  async lookup(path: string): Promise<FsNode> {
    return this.peek(path) ?? this.walk(path);
  }

  /**
   * The node at `path` when no directory on the way needs loading: a few Map lookups, no
   * promise. The kernel asks getattr, getxattr and listxattr for every entry `ls -l` shows (#16).
   */
  peek(path: string): FsNode | undefined {
    let node = this.root;
    for (let start = 1; start < path.length; ) {
      let end = path.indexOf('/', start);
      if (end < 0) end = path.length;
      if (end > start) {
        if (node.kind !== 'dir' || node.load) return undefined;
        const next = node.children?.get(path.slice(start, end));
        if (!next) return undefined;
        node = next;
      }
      start = end + 1;
    }
    return node;
  }

  /** The general walk: loads lazy directories and resolves names on the way. */
  private async walk(path: string): Promise<FsNode> {
    let node = this.root;
    for (const name of path.split('/')) {
      if (name === '') continue;
      if (node.kind !== 'dir') throw new FsError('ENOTDIR', `${path}: not a directory`);
      if (name.length > 255) throw new FsError('ENAMETOOLONG', `${path}: name too long`);
      const children = await this.children(node);
      const next = children.get(name) ?? (node.resolve ? await this.resolveChild(node, name) : undefined);
      if (!next) throw new FsError('ENOENT', `${path}: no such file or directory`);
      node = next;
    }
    return node;
  }

  async getattr(path: string): Promise<Stat> {
    return statOf(await this.settled(path));
  }

  /** The node at `path` with its own attributes final: a lazy root whose load sets them is loaded first. */
  private async settled(path: string): Promise<FsNode> {
    const node = await this.lookup(path);
    if (node.attrsFromLoad) await this.children(node);
    return node;
  }

  async readdir(path: string): Promise<{ names: string[]; stats: Stat[] }> {
    const node = await this.lookup(path);
    if (node.kind !== 'dir') throw new FsError('ENOTDIR', `${path}: not a directory`);
    const children = await this.children(node);
    const names = ['.', '..'];
    const stats = [statOf(node), statOf(node)];
    for (const [name, child] of children) {
      names.push(name);
      stats.push(statOf(child));
    }
    return { names, stats };
  }

  async open(path: string, flags: number): Promise<number> {
    if ((flags & O_ACCMODE) !== O_RDONLY) throw new FsError('EROFS', `${path}: read-only filesystem`);
    const node = await this.lookup(path);
    if (node.kind === 'dir') throw new FsError('EISDIR', `${path}: is a directory`);
    if (!node.content) throw new FsError('EINVAL', `${path}: has no data`);
    // fuse-native passes fh as 32 bits; wrap around, skipping 0 and handles still open.
    let fh = this.nextFh;
    while (fh === 0 || this.handles.has(fh)) fh = (fh + 1) >>> 0;
    this.nextFh = (fh + 1) >>> 0;
    this.handles.set(fh, { node, readahead: new SequentialReadahead(this.readaheadPolicy) });
    return fh;
  }

  release(fh: number): void {
    this.handles.delete(fh);
  }

  /** Reads into the kernel's buffer. The signal fires when the kernel can no longer take the bytes. */
  async read(fh: number, position: number, into: Uint8Array, signal: AbortSignal): Promise<number> {
    const h = this.handles.get(fh);
    if (!h || !h.node.content) throw new FsError('EBADF', `bad file handle ${fh}`);
    const content = h.node.content;
    if (position >= content.size) return 0;
    const started = performance.now();
    if (content.prefetch) {
      const ahead = h.readahead.onRead(position, into.length, content.size);
      if (h.readahead.sequential) content.prefetch(position + into.length, NEAR_AHEAD, true);
      if (ahead) content.prefetch(ahead.offset, ahead.length);
    }
    try {
      const n = await content.read(position, into.subarray(0, Math.min(into.length, content.size - position)), signal);
      this.opts.onRead?.(n, performance.now() - started, true);
      return n;
    } catch (e) {
      this.opts.onRead?.(0, performance.now() - started, false);
      throw e;
    }
  }

  async readlink(path: string): Promise<string> {
    const node = await this.lookup(path);
    if (node.kind !== 'symlink' || node.target === undefined) throw new FsError('EINVAL', `${path}: not a symlink`);
    return node.target;
  }

  /** Nothing is ever created: a directory with an `onCreate` hook hears of it, then ENOENT; else EROFS. */
  async create(path: string): Promise<never> {
    const { dir, name } = await this.parentOf(path);
    if (!dir.onCreate) throw new FsError('EROFS', `${path}: read-only filesystem`);
    dir.onCreate(name);
    throw new FsError('ENOENT', `${path}: noted, not created`);
  }

  /** Nothing is ever removed: a directory with an `onRemoveChild` hook hears of it, then ENOENT; else EROFS. */
  async rmdir(path: string): Promise<never> {
    const { dir, name } = await this.parentOf(path);
    if (!dir.onRemoveChild) throw new FsError('EROFS', `${path}: read-only filesystem`);
    dir.onRemoveChild(name);
    throw new FsError('ENOENT', `${path}: noted, not removed`);
  }

  private async parentOf(path: string): Promise<{ dir: FsNode; name: string }> {
    const cut = path.lastIndexOf('/');
    const dir = await this.lookup(path.slice(0, Math.max(cut, 0)));
    if (dir.kind !== 'dir') throw new FsError('ENOTDIR', `${path}: not a directory`);
    return { dir, name: path.slice(cut + 1) };
  }

  async getxattr(path: string, name: string): Promise<Buffer | undefined> {
    const v = (await this.settled(path)).xattrs?.get(name);
    // `ls -l` asks these two of every entry, and the kernel does not cache the answer. "Not
    // supported" (what a filesystem without SELinux labels or ACLs says) makes coreutils stop
    // asking for the rest of the mount: 2 requests for a whole `ls -lR` instead of 2 per entry.
    if (v === undefined && UNSUPPORTED_XATTRS.has(name)) throw new FsError('EOPNOTSUPP', `${path}: no ${name} here`);
    return v;
  }

  async listxattr(path: string): Promise<string[]> {
    const node = await this.settled(path);
    return node.xattrs ? [...node.xattrs.keys()] : NO_NAMES;
  }

  get openHandles(): number {
    return this.handles.size;
  }

  private readonly resolving = new Map<FsNode, Map<string, Promise<FsNode | undefined>>>();

  /** One resolution per (directory, name) at a time; the result becomes a child. */
  private resolveChild(dir: FsNode, name: string): Promise<FsNode | undefined> {
    let pending = this.resolving.get(dir);
    if (!pending) this.resolving.set(dir, (pending = new Map()));
    let p = pending.get(name);
    if (!p) {
      p = dir.resolve!(name).then((child) => {
        if (child) {
          dir.children ??= new Map();
          dir.children.set(name, child);
          if (child.kind === 'dir') dir.nlink++;
        }
        return child;
      });
      pending.set(name, p);
      const done = (): void => void pending!.delete(name);
      p.then(done, done);
    }
    return p;
  }

  private async children(node: FsNode): Promise<Map<string, FsNode>> {
    await loadNode(node);
    return node.children ?? new Map();
  }
}

export function statOf(n: FsNode): Stat {
  const t = new Date(n.mtimeMs);
  return {
    mode: kindBits(n.kind) | (n.mode & 0o7777),
    uid: n.uid,
    gid: n.gid,
    // A target is a byte name: its length is its size in bytes.
    size: n.kind === 'symlink' ? (n.target ?? '').length : n.size,
    nlink: n.nlink,
    ino: n.ino,
    rdev: n.rdev,
    blksize: 4096,
    blocks: Math.ceil(n.size / 512),
    atime: t,
    mtime: t,
    ctime: t,
  };
}
