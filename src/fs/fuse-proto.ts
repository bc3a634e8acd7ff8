// The FUSE kernel protocol as regfs speaks it on a /dev/fuse descriptor it serves itself
// (include/uapi/linux/fuse.h; protocol 7.31 replies, every field little-endian on x86-64/arm64).
import type { Stat } from './filesystem.js';

export const FUSE_KERNEL_VERSION = 7;
/** The minor version regfs answers INIT with: 7.28 brought max_pages, 7.31 is Linux 5.4's. */
export const FUSE_KERNEL_MINOR_VERSION = 31;
export const FUSE_ROOT_ID = 1n;

export const enum Op {
  LOOKUP = 1,
  FORGET = 2,
  GETATTR = 3,
  READLINK = 5,
  OPEN = 14,
  READ = 15,
  STATFS = 17,
  RELEASE = 18,
  GETXATTR = 22,
  LISTXATTR = 23,
  FLUSH = 25,
  INIT = 26,
  OPENDIR = 27,
  READDIR = 28,
  RELEASEDIR = 29,
  ACCESS = 34,
  INTERRUPT = 36,
  DESTROY = 38,
  BATCH_FORGET = 42,
}

export const FUSE_ASYNC_READ = 1 << 0;
export const FUSE_PARALLEL_DIROPS = 1 << 18;
export const FUSE_MAX_PAGES = 1 << 22;
export const FUSE_CACHE_SYMLINKS = 1 << 23;
/** fuse_open_out.open_flags: content is immutable, keep the page cache across opens. */
export const FOPEN_KEEP_CACHE = 1 << 1;

export const IN_HEADER_SIZE = 40;
export const OUT_HEADER_SIZE = 16;
const ATTR_SIZE = 88;

export interface InHeader {
  len: number;
  opcode: number;
  unique: bigint;
  nodeid: bigint;
}

export function readInHeader(b: Buffer): InHeader {
  return { len: b.readUInt32LE(0), opcode: b.readUInt32LE(4), unique: b.readBigUInt64LE(8), nodeid: b.readBigUInt64LE(16) };
}

/** fuse_out_header + payload; `error` is 0 or a negative errno. */
export function reply(unique: bigint, error: number, payload?: Buffer): Buffer {
  const out = Buffer.alloc(OUT_HEADER_SIZE + (payload?.length ?? 0));
  out.writeUInt32LE(out.length, 0);
  out.writeInt32LE(error, 4);
  out.writeBigUInt64LE(unique, 8);
  payload?.copy(out, OUT_HEADER_SIZE);
  return out;
}

/** Seconds and nanoseconds of a millisecond time, floored, so a time before 1970 stays exact. */
function secNsec(ms: number): [bigint, number] {
  const sec = Math.floor(ms / 1000);
  return [BigInt(sec), Math.round((ms - sec * 1000) * 1e6)];
}

function writeAttr(b: Buffer, at: number, st: Stat): void {
  b.writeBigUInt64LE(BigInt(st.ino), at);
  b.writeBigUInt64LE(BigInt(st.size), at + 8);
  b.writeBigUInt64LE(BigInt(st.blocks), at + 16);
  const times = [st.atime, st.mtime, st.ctime].map((d) => secNsec(d.getTime()));
  times.forEach(([s, ns], i) => {
    b.writeBigInt64LE(s, at + 24 + 8 * i);
    b.writeUInt32LE(ns, at + 48 + 4 * i);
  });
  b.writeUInt32LE(st.mode, at + 60);
  b.writeUInt32LE(st.nlink, at + 64);
  b.writeUInt32LE(st.uid, at + 68);
  b.writeUInt32LE(st.gid, at + 72);
  b.writeUInt32LE(st.rdev >>> 0, at + 76);
  b.writeUInt32LE(st.blksize, at + 80);
}

function ttl(b: Buffer, at: number, seconds: number): void {
  b.writeBigUInt64LE(BigInt(seconds), at);
}

export function entryOut(nodeid: bigint, st: Stat, ttlS: number): Buffer {
  const b = Buffer.alloc(40 + ATTR_SIZE);
  b.writeBigUInt64LE(nodeid, 0);
  ttl(b, 16, ttlS);
  ttl(b, 24, ttlS);
  writeAttr(b, 40, st);
  return b;
}

export function attrOut(st: Stat, ttlS: number): Buffer {
  const b = Buffer.alloc(16 + ATTR_SIZE);
  ttl(b, 0, ttlS);
  writeAttr(b, 16, st);
  return b;
}

export function openOut(fh: bigint, flags: number): Buffer {
  const b = Buffer.alloc(16);
  b.writeBigUInt64LE(fh, 0);
  b.writeUInt32LE(flags, 8);
  return b;
}

export function initOut(kernelMinor: number, maxReadahead: number, kernelFlags: number, maxWrite: number): Buffer {
  const b = Buffer.alloc(64);
  b.writeUInt32LE(FUSE_KERNEL_VERSION, 0);
  b.writeUInt32LE(Math.min(kernelMinor, FUSE_KERNEL_MINOR_VERSION), 4);
  b.writeUInt32LE(maxReadahead, 8);
  b.writeUInt32LE(kernelFlags & (FUSE_ASYNC_READ | FUSE_PARALLEL_DIROPS | FUSE_MAX_PAGES | FUSE_CACHE_SYMLINKS), 12);
  b.writeUInt16LE(64, 16); // max_background
  b.writeUInt16LE(48, 18); // congestion_threshold
  b.writeUInt32LE(maxWrite, 20);
  b.writeUInt32LE(1, 24); // time_gran: nanoseconds
  b.writeUInt16LE(maxWrite / 4096, 28); // max_pages: reads as large as writes
  return b;
}

export function statfsOut(): Buffer {
  const b = Buffer.alloc(80);
  b.writeUInt32LE(4096, 40); // bsize
  b.writeUInt32LE(255, 44); // namelen
  b.writeUInt32LE(4096, 48); // frsize
  return b;
}

/** fuse_getxattr_out / listxattr size answer. */
export function sizeOut(size: number): Buffer {
  const b = Buffer.alloc(8);
  b.writeUInt32LE(size, 0);
  return b;
}

/** One fuse_dirent (8-byte aligned); `name` is a byte name. */
export function dirent(ino: bigint, off: number, mode: number, name: string): Buffer {
  const n = Buffer.from(name, 'latin1');
  const b = Buffer.alloc((24 + n.length + 7) & ~7);
  b.writeBigUInt64LE(ino, 0);
  b.writeBigUInt64LE(BigInt(off), 8);
  b.writeUInt32LE(n.length, 16);
  b.writeUInt32LE((mode >>> 12) & 0o17, 20); // DT_* is the S_IFMT nibble
  n.copy(b, 24);
  return b;
}

/** A NUL-terminated name in a request body, as a byte name. */
export function cName(b: Buffer, at: number): string {
  const end = b.indexOf(0, at);
  return b.toString('latin1', at, end < 0 ? b.length : end);
}
