import { randomInt } from 'node:crypto';
import { write } from 'node:fs';
import { constants } from 'node:os';
import { displayName } from '../lib/byte-name.js';
import { RegfsError } from '../lib/errors.js';
import type { Logger } from '../lib/logger.js';
import { DirHandles } from './dir-handles.js';
import { errnoOf, FsError, type ErrnoName } from './errno.js';
import { fdPass } from './fd-pass.js';
import type { ReadOnlyFilesystem } from './filesystem.js';
import * as P from './fuse-proto.js';
import { NodeTable, nodeIdOf } from './node-table.js';

export interface SessionOptions {
  logger: Logger;
  /** Our own deadline for a read: past it the kernel gets EIO. */
  readDeadlineMs: number;
  /** Immutable content: entries and attributes may be cached this long (seconds). */
  cacheTtlS: number;
  /** Reader threads (each waits in read(2) on /dev/fuse; requests are then handled concurrently). */
  readers?: number;
}

/** Largest read the kernel sends (init_out.max_pages × 4 KiB): 1 MiB, 8× fuse-native's 128 KiB. */
const MAX_IO = 1 << 20;
const OWN_FH_MASK = 0xffffffffn;

const errnoNum = (name: ErrnoName): number => -(constants.errno as Record<string, number>)[name]!;

function writeReply(fd: number, buf: Buffer): Promise<void> {
  return new Promise((resolve, reject) => write(fd, buf, (e) => (e ? reject(e) : resolve())));
}

/**
 * A FUSE session regfs serves itself on a /dev/fuse descriptor (the low-level protocol,
 * fuse-proto.ts), so that another regfs process can take it over (#19): node ids are derived
 * from paths (node-table.ts, which also logs them), file handles carry this process's
 * generation in their high 32 bits, so a handle from an earlier process is recognised and
 * reopened by path, and `takeOver` asks the kernel (FUSE_NOTIFY_RESEND, Linux ≥ 6.9) to queue
 * again what the previous process read but never answered. Requests are idempotent for a
 * read-only filesystem, so a request answered twice is harmless: the second answer is refused
 * by the kernel with ENOENT and dropped here.
 */
export class FuseSession {
  private readonly gen = BigInt(randomInt(1, 0x7fffffff)) << 32n;
  /** Handles of earlier processes, reopened here: kernel fh → our fh. */
  private readonly adopted = new Map<bigint, Promise<number>>();
  private readonly reads = new Map<AbortController, () => void>();
  private readonly dirs: DirHandles<Awaited<ReturnType<ReadOnlyFilesystem['readdir']>>>;
  private stopped = false;
  private readonly readers: unknown[] = [];
  private readonly ended: Promise<void>;
  private endLoops!: () => void;

  constructor(
    readonly fd: number,
    private readonly fs: ReadOnlyFilesystem,
    private readonly nodes: NodeTable,
    private readonly opts: SessionOptions,
  ) {
    this.ended = new Promise((r) => (this.endLoops = r));
    this.dirs = new DirHandles((path) => this.fs.readdir(path), this.gen);
  }

  /** Starts answering the kernel. */
  start(): void {
    const n = this.opts.readers ?? 2;
    let running = n;
    for (let i = 0; i < n; i++) {
      const handle = fdPass().startReader(this.fd, MAX_IO + 4096, (req, errno) => {
        if (req) {
          if (req.length >= P.IN_HEADER_SIZE) void this.handle(req);
          return;
        }
        if (errno !== constants.errno.ENODEV) this.opts.logger.warn({ errno }, 'reading /dev/fuse failed: the session ends');
        if (--running === 0) this.endLoops();
      });
      this.readers.push(handle);
    }
  }

  /**
   * For a session an earlier process served, once that process is gone: asks the kernel to queue
   * again the requests it read and never answered. False when the kernel cannot (older than
   * 6.9): those requests then wait forever; later ones are served.
   */
  resend(): boolean {
    const rc = fdPass().notifyResend(this.fd);
    if (rc !== 0) this.opts.logger.warn({ errno: -rc }, 'FUSE_NOTIFY_RESEND refused (kernel older than 6.9?): requests the previous process had read stay unanswered');
    return rc === 0;
  }

  /** Resolves when the kernel ended the session (unmounted or aborted). */
  get closed(): Promise<void> {
    return this.ended;
  }

  get inFlight(): number {
    return this.reads.size;
  }

  /** Ends in-flight reads with EIO (shutdown). */
  abortReads(): void {
    for (const fail of [...this.reads.values()]) fail();
  }

  /** Stops taking requests; the descriptor stays open for whoever takes over. */
  stop(): void {
    if (this.stopped) return;
    this.stopped = true;
    for (const r of this.readers) fdPass().stopReader(r);
  }

  private async send(unique: bigint, error: number, payload?: Buffer): Promise<boolean> {
    try {
      await writeReply(this.fd, P.reply(unique, error, payload));
      return true;
    } catch (e) {
      // ENOENT: the kernel no longer waits for this answer (interrupted, or answered already).
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') this.opts.logger.warn({ err: (e as Error).message }, 'writing to /dev/fuse failed');
      return false;
    }
  }

  private async path(nodeid: bigint): Promise<string> {
    let p = this.nodes.pathOf(nodeid);
    if (p === undefined) {
      await this.nodes.reload();
      p = this.nodes.pathOf(nodeid);
    }
    if (p === undefined) throw new FsError('ESTALE', `node ${nodeid} is unknown to this process`);
    return p;
  }

  private async handle(req: Buffer): Promise<void> {
    const h = P.readInHeader(req);
    const body = req.subarray(P.IN_HEADER_SIZE);
    const ttl = this.opts.cacheTtlS;
    try {
      switch (h.opcode) {
        case P.Op.INIT: {
          const minor = body.readUInt32LE(4);
          await this.send(h.unique, 0, P.initOut(minor, body.readUInt32LE(8), body.readUInt32LE(12), MAX_IO));
          return;
        }
        case P.Op.LOOKUP: {
          const parent = await this.path(h.nodeid);
          const name = P.cName(body, 0);
          const path = parent === '/' ? `/${name}` : `${parent}/${name}`;
          const st = await this.fs.getattr(path);
          const nodeid = nodeIdOf(path);
          await this.nodes.remember(nodeid, path);
          await this.send(h.unique, 0, P.entryOut(nodeid, st, ttl));
          return;
        }
        case P.Op.FORGET:
        case P.Op.BATCH_FORGET:
        case P.Op.INTERRUPT:
          return; // no answer expected; the table keeps its paths (see NodeTable)
        case P.Op.GETATTR:
          await this.send(h.unique, 0, P.attrOut(await this.fs.getattr(await this.path(h.nodeid)), ttl));
          return;
        case P.Op.READLINK:
          await this.send(h.unique, 0, Buffer.from(await this.fs.readlink(await this.path(h.nodeid)), 'latin1'));
          return;
        case P.Op.OPEN: {
          const fh = await this.fs.open(await this.path(h.nodeid), body.readUInt32LE(0));
          const kfh = this.gen | BigInt(fh);
          if (!(await this.send(h.unique, 0, P.openOut(kfh, P.FOPEN_KEEP_CACHE)))) this.fs.release(fh);
          return;
        }
        case P.Op.READ:
          await this.read(h, body);
          return;
        case P.Op.RELEASE: {
          const kfh = body.readBigUInt64LE(0);
          const own = this.ownFh(kfh);
          if (own !== undefined) this.fs.release(own);
          else {
            const adopted = this.adopted.get(kfh);
            this.adopted.delete(kfh);
            if (adopted) this.fs.release(await adopted.catch(() => 0));
          }
          await this.send(h.unique, 0);
          return;
        }
        case P.Op.OPENDIR:
          await this.path(h.nodeid);
          await this.send(h.unique, 0, P.openOut(this.dirs.opendir(), 0));
          return;
        case P.Op.READDIR:
          await this.readdir(h, body);
          return;
        case P.Op.GETXATTR: {
          const size = body.readUInt32LE(0);
          const name = P.cName(body, 8);
          const path = await this.path(h.nodeid);
          const v = await this.fs.getxattr(path, name);
          if (!v) throw new FsError('ENODATA', `${displayName(path)}: no xattr ${displayName(name)}`);
          if (size === 0) await this.send(h.unique, 0, P.sizeOut(v.length));
          else if (v.length > size) await this.send(h.unique, errnoNum('ERANGE'));
          else await this.send(h.unique, 0, v);
          return;
        }
        case P.Op.LISTXATTR: {
          const size = body.readUInt32LE(0);
          const names = await this.fs.listxattr(await this.path(h.nodeid));
          const list = Buffer.from(names.map((n) => `${n}\0`).join(''), 'latin1');
          if (size === 0) await this.send(h.unique, 0, P.sizeOut(list.length));
          else if (list.length > size) await this.send(h.unique, errnoNum('ERANGE'));
          else await this.send(h.unique, 0, list);
          return;
        }
        case P.Op.STATFS:
          await this.send(h.unique, 0, P.statfsOut());
          return;
        case P.Op.RELEASEDIR:
          this.dirs.releasedir(body.readBigUInt64LE(0));
          await this.send(h.unique, 0);
          return;
        case P.Op.ACCESS: // default_permissions: the kernel checks modes itself
        case P.Op.FLUSH:
          await this.send(h.unique, 0);
          return;
        case P.Op.DESTROY:
          await this.send(h.unique, 0);
          this.stop();
          return;
        default:
          await this.send(h.unique, -constants.errno.ENOSYS);
      }
    } catch (e) {
      const name = errnoOf(e);
      if (!(e instanceof FsError) || name === 'EIO') this.opts.logger.warn({ op: h.opcode, err: (e as Error)?.message, code: (e as { code?: string })?.code }, `FUSE op ${h.opcode} failed: ${name}`);
      await this.send(h.unique, errnoNum(name));
    }
  }

  private ownFh(kfh: bigint): number | undefined {
    return (kfh & ~OWN_FH_MASK) === this.gen ? Number(kfh & OWN_FH_MASK) : undefined;
  }

  /** Our handle for a kernel fh: ours, or one an earlier process opened, reopened here by path. */
  private handleFor(nodeid: bigint, kfh: bigint): Promise<number> {
    const own = this.ownFh(kfh);
    if (own !== undefined) return Promise.resolve(own);
    let p = this.adopted.get(kfh);
    if (!p) {
      p = this.path(nodeid).then((path) => this.fs.open(path, 0));
      this.adopted.set(kfh, p);
      p.catch(() => this.adopted.delete(kfh));
    }
    return p;
  }

  private async read(h: P.InHeader, body: Buffer): Promise<void> {
    const kfh = body.readBigUInt64LE(0);
    const offset = Number(body.readBigUInt64LE(8));
    const size = Math.min(body.readUInt32LE(16), MAX_IO);
    const fh = await this.handleFor(h.nodeid, kfh);
    // The reply is built in place: header first, the bytes read straight after it.
    const out = Buffer.alloc(P.OUT_HEADER_SIZE + size);
    const ac = new AbortController();
    let failed = false;
    const fail = (): void => {
      failed = true;
      ac.abort();
    };
    this.reads.set(ac, fail);
    const timer = setTimeout(() => {
      this.opts.logger.warn({ nodeid: String(h.nodeid), offset, size }, `read did not finish within ${this.opts.readDeadlineMs} ms: EIO`);
      fail();
    }, this.opts.readDeadlineMs);
    let n: number;
    try {
      n = await Promise.race([
        this.fs.read(fh, offset, out.subarray(P.OUT_HEADER_SIZE), ac.signal),
        new Promise<never>((_, reject) => ac.signal.addEventListener('abort', () => reject(new FsError('EIO', 'read aborted')), { once: true })),
      ]);
    } finally {
      clearTimeout(timer);
      this.reads.delete(ac);
    }
    if (failed) throw new FsError('EIO', 'read aborted');
    const reply = out.subarray(0, P.OUT_HEADER_SIZE + n);
    reply.writeUInt32LE(reply.length, 0);
    reply.writeInt32LE(0, 4);
    reply.writeBigUInt64LE(h.unique, 8);
    try {
      await writeReply(this.fd, reply);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
    }
  }

  private async readdir(h: P.InHeader, body: Buffer): Promise<void> {
    // fuse_read_in: fh, offset, size.
    const fh = body.readBigUInt64LE(0);
    const offset = Number(body.readBigUInt64LE(8));
    const size = body.readUInt32LE(16);
    const { names, stats } = await this.dirs.listing(fh, await this.path(h.nodeid));
    const parts: Buffer[] = [];
    let used = 0;
    for (let i = offset; i < names.length; i++) {
      const d = P.dirent(BigInt(stats[i]!.ino), i + 1, stats[i]!.mode, names[i]!);
      if (used + d.length > size) break;
      parts.push(d);
      used += d.length;
    }
    await this.send(h.unique, 0, Buffer.concat(parts));
  }
}

export interface MountSessionOptions extends SessionOptions {
  allowOther: boolean;
  /** Where node ids are logged for a later takeover (node-table.ts); none: no takeover. */
  nodeLog?: string;
}

/** As root: mounts `fs` at `mountpoint` on a descriptor this process serves and can hand over. */
export function mountSession(fs: ReadOnlyFilesystem, mountpoint: string, opts: MountSessionOptions): FuseSession {
  const fd = fdPass().mountFuse(mountpoint, ['default_permissions', ...(opts.allowOther ? ['allow_other'] : [])].join(','));
  if (fd < 0) throw new RegfsError('ERR_MOUNT', `cannot mount FUSE at ${mountpoint}: ${Object.entries(constants.errno).find(([, v]) => v === -fd)?.[0] ?? `errno ${-fd}`}`);
  const session = new FuseSession(fd, fs, NodeTable.fresh(opts.nodeLog), opts);
  session.start();
  return session;
}

/**
 * Serves a mount an earlier process made and kept alive (its descriptor came from the fd store or
 * regfs-fd-holder), with the node table from its log. Call `resend()` once that process is gone.
 */
export async function takeOverSession(fd: number, fs: ReadOnlyFilesystem, opts: SessionOptions & { nodeLog: string }): Promise<FuseSession> {
  const session = new FuseSession(fd, fs, await NodeTable.load(opts.nodeLog), opts);
  session.start();
  return session;
}
