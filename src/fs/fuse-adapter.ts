import type { FuseOps, FuseStat } from 'fuse-native';
import { displayName } from '../lib/byte-name.js';
import { RegfsError } from '../lib/errors.js';
import type { Logger } from '../lib/logger.js';
import { errnoOf, FsError } from './errno.js';
import type { ReadOnlyFilesystem } from './filesystem.js';
import { Fuse } from './fuse-binding.js';

export interface FuseMountOptions {
  /** Our own deadline for a read: past it the kernel gets EIO (retry budget + margin). */
  readDeadlineMs: number;
  allowOther: boolean;
  logger: Logger;
  /** Immutable content: the kernel may cache attributes and entries this long (seconds). */
  cacheTtlS?: number;
  /**
   * Mount without `ro` so that `create` and `rmdir` reach the filesystem (the layer store's
   * use/release protocol; a read-only mount answers EROFS in the kernel). Nothing is writable
   * either way: the filesystem answers EROFS or ENOENT.
   */
  notesCreates?: boolean;
}

export interface FuseMount {
  readonly mountpoint: string;
  /** Reads under way right now. */
  readonly inFlight: number;
  /** The mount's /dev/fuse descriptor: whoever keeps a copy open keeps the mount alive (#19). */
  readonly sessionFd: number;
  /**
   * Shutdown: ends in-flight reads with EIO and answers every later read EIO at once. A read
   * still pending in the daemon when its /dev/fuse closes gets ECONNABORTED from the kernel
   * (fuse_abort_conn), so none may be left waiting on the registry until then.
   */
  abortReads(): void;
  unmount(): Promise<void>;
}

function errno(name: string): number {
  const v = (Fuse as unknown as Record<string, number>)[name];
  return typeof v === 'number' ? v : -5;
}

/**
 * The thin fuse-native adapter: every handler is guarded so that an exception becomes an errno
 * (never a dead mount), every read has a deadline shorter than fuse-native's own op timeout (its
 * timeout detaches the buffer and a late write would crash the process), and a callback is
 * called once at most. Paths, names, link targets and xattr names are byte names from and to
 * the kernel (fuse-binding.ts), xattr values Buffers; logs show them with `displayName`.
 */
export async function mountFuse(fs: ReadOnlyFilesystem, mountpoint: string, opts: FuseMountOptions): Promise<FuseMount> {
  const log = opts.logger;
  /** In-flight reads → a function that ends them with EIO. */
  const reads = new Map<AbortController, { fail: () => void; deadline: number; path: string; pos: number; len: number }>();
  // One sweep for every read's deadline instead of a timer armed and cleared per read: at tens of
  // thousands of cached reads a second, the timers were a measurable share of each read (#16).
  // The deadline is checked 4 times a second: a late read fails ≤ 250 ms after its deadline.
  const sweep = setInterval(() => {
    const now = performance.now();
    for (const r of reads.values()) {
      if (now < r.deadline) continue;
      log.warn({ path: displayName(r.path), pos: r.pos, len: r.len }, `read did not finish within ${opts.readDeadlineMs} ms: EIO`);
      r.fail();
    }
  }, 250);
  sweep.unref();
  let stopping = false;
  const ttl = opts.cacheTtlS ?? 3600;

  const guard = (op: string, path: string, cb: (err: number, ...rest: unknown[]) => void, work: () => Promise<unknown[]>): void => {
    let answered = false;
    const answer = (err: number, ...rest: unknown[]): void => {
      if (answered) return;
      answered = true;
      cb(err, ...rest);
    };
    work().then(
      (rest) => answer(0, ...rest),
      (e: unknown) => {
        const name = errnoOf(e);
        if (!(e instanceof FsError) || name === 'EIO') log.warn({ op, path: displayName(path), err: (e as Error)?.message, code: (e as { code?: string })?.code }, `${op} failed: ${name}`);
        answer(errno(name));
      },
    );
  };

  const ops: FuseOps = {
    getattr: (path, cb) => guard('getattr', path, cb as never, async () => [(await fs.getattr(path)) as FuseStat]),
    readdir: (path, cb) =>
      guard('readdir', path, cb as never, async () => {
        const { names, stats } = await fs.readdir(path);
        return [names, stats as FuseStat[]];
      }),
    open: (path, flags, cb) => guard('open', path, cb as never, async () => [await fs.open(path, flags)]),
    release: (path, fd, cb) =>
      guard('release', path, cb as never, async () => {
        fs.release(fd);
        return [];
      }),
    readlink: (path, cb) => guard('readlink', path, cb as never, async () => [await fs.readlink(path)]),
    getxattr: (path, name, _pos, cb) =>
      guard('getxattr', path, cb as never, async () => {
        const v = await fs.getxattr(path, name);
        if (!v) throw new FsError('ENODATA', `${displayName(path)}: no xattr ${displayName(name)}`);
        return [v];
      }),
    listxattr: (path, cb) => guard('listxattr', path, cb as never, async () => [await fs.listxattr(path)]),
    create: (path, _mode, cb) => guard('create', path, cb as never, () => fs.create(path)),
    rmdir: (path, cb) => guard('rmdir', path, cb as never, () => fs.rmdir(path)),
    statfs: (_path, cb) => cb(0, { bsize: 4096, frsize: 4096, blocks: 0, bfree: 0, bavail: 0, files: 0, ffree: 0, favail: 0, fsid: 0, flag: 1, namemax: 255 }),
    read: (path, fd, buf, len, pos, cb) => {
      if (stopping) return cb(errno('EIO'));
      const ac = new AbortController();
      let answered = false;
      const answer = (v: number): void => {
        if (answered) return;
        answered = true;
        reads.delete(ac);
        cb(v);
      };
      // Abort first: a content reader checks the signal before it writes into `buf`.
      const fail = (): void => {
        ac.abort();
        answer(errno('EIO'));
      };
      reads.set(ac, { fail, deadline: performance.now() + opts.readDeadlineMs, path, pos, len });
      fs.read(fd, pos, buf.subarray(0, len), ac.signal).then(
        (n) => answer(ac.signal.aborted ? errno('EIO') : n),
        (e: unknown) => {
          if (!ac.signal.aborted) log.warn({ path: displayName(path), pos, len, err: (e as Error)?.message, code: (e as { code?: string })?.code }, 'read failed: EIO');
          answer(errno(errnoOf(e)));
        },
      );
    },
  };

  const fuse = new Fuse(mountpoint, ops, {
    // Above our own read deadline, so fuse-native's timeout (which detaches the buffer) never fires first.
    timeout: { default: 30_000, read: opts.readDeadlineMs + 15_000 },
    force: true,
    mkdir: false,
    kernelCache: true,
    entryTimeout: ttl,
    attrTimeout: ttl,
    allowOther: opts.allowOther,
    // fuse-native passes only options it knows; these ride along in the comma-joined -o string:
    // ro (read-only), use_ino (our stable inode numbers, needed for hardlinks), larger kernel read-ahead.
    fsname: `regfs,${opts.notesCreates ? '' : 'ro,'}use_ino,max_readahead=1048576,default_permissions`,
    subtype: 'regfs',
  });
  await new Promise<void>((resolve, reject) =>
    fuse.mount((err) =>
      err ? reject(new RegfsError('ERR_MOUNT', `cannot mount FUSE at ${mountpoint}: ${err.message} (is /dev/fuse usable, and are you root or in the fuse group?)`)) : resolve(),
    ),
  );

  return {
    mountpoint,
    get inFlight() {
      return reads.size;
    },
    sessionFd: fuse.sessionFd(),
    abortReads() {
      stopping = true;
      for (const r of [...reads.values()]) r.fail();
    },
    unmount: () =>
      new Promise<void>((resolve) => {
        clearInterval(sweep);
        fuse.unmount((err) => {
          if (err) log.debug({ err: err.message }, 'fuse-native unmount reported an error');
          resolve();
        });
      }),
  };
}
