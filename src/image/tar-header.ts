/**
 * POSIX ustar / GNU / PAX header parsing (POSIX.1-2001 pax format, GNU tar manual "Standard"),
 * pure functions over 512-byte blocks. Every name field comes out as a byte name
 * (`lib/byte-name.ts`): tar stores bytes, and so do we.
 */
import { type ByteName, byteName } from '../lib/byte-name.js';
import { TarFormatError } from './errors.js';

export { TarFormatError };

export const BLOCK = 512;

export type TarType =
  | 'file'
  | 'hardlink'
  | 'symlink'
  | 'chardev'
  | 'blockdev'
  | 'dir'
  | 'fifo'
  | 'pax'
  | 'pax-global'
  | 'gnu-longname'
  | 'gnu-longlink'
  | 'gnu-sparse'
  | 'other';

export interface RawHeader {
  name: ByteName;
  mode: number;
  uid: number;
  gid: number;
  size: number;
  /** Seconds since the epoch; negative before 1970 (base-256 fields are signed). */
  mtime: number;
  type: TarType;
  typeflag: string;
  linkname: ByteName;
  uname: ByteName;
  gname: ByteName;
  devmajor: number;
  devminor: number;
  /** The 512 bytes themselves, for format extensions parsed elsewhere (old GNU sparse). */
  block: Uint8Array;
}

const TYPES: Record<string, TarType> = {
  '0': 'file', '\0': 'file', '7': 'file', '1': 'hardlink', '2': 'symlink', '3': 'chardev', '4': 'blockdev', '5': 'dir', '6': 'fifo',
  x: 'pax', g: 'pax-global', L: 'gnu-longname', K: 'gnu-longlink', S: 'gnu-sparse',
};

/** A NUL-terminated field as a byte name. */
export function field(b: Uint8Array, off: number, len: number): ByteName {
  let end = off;
  while (end < off + len && b[end] !== 0) end++;
  return byteName(b.subarray(off, end));
}

/**
 * Octal, or GNU base-256 when the high bit of the first byte is set: the remaining bits are a
 * big-endian two's complement number (bit 6 of the first byte is the sign), so 0xff… is negative
 * (GNU tar writes pre-1970 mtimes this way; Go's archive/tar reads them the same).
 */
export function numeric(b: Uint8Array, off: number, len: number, what: string): number {
  if (b[off]! & 0x80) {
    const negative = (b[off]! & 0x40) !== 0;
    let v = 0n;
    for (let i = off; i < off + len; i++) {
      let c = negative ? b[i]! ^ 0xff : b[i]!;
      if (i === off) c &= 0x7f;
      v = (v << 8n) | BigInt(c);
    }
    if (negative) v = -v - 1n;
    if (v > BigInt(Number.MAX_SAFE_INTEGER) || v < BigInt(Number.MIN_SAFE_INTEGER)) throw new TarFormatError(`${what} is out of range`);
    return Number(v);
  }
  const s = field(b, off, len).trim();
  if (s === '') return 0;
  if (!/^[0-7]+$/.test(s)) throw new TarFormatError(`${what} is not an octal number: ${JSON.stringify(s)}`);
  return parseInt(s, 8);
}

export function isZeroBlock(b: Uint8Array): boolean {
  for (let i = 0; i < BLOCK; i++) if (b[i] !== 0) return false;
  return true;
}

export function parseHeader(b: Uint8Array): RawHeader {
  if (b.length < BLOCK) throw new TarFormatError('truncated header');
  let sum = 0;
  for (let i = 0; i < BLOCK; i++) sum += i >= 148 && i < 156 ? 32 : b[i]!;
  const stored = numeric(b, 148, 8, 'checksum');
  if (stored !== sum) throw new TarFormatError(`header checksum mismatch (stored ${stored}, computed ${sum})`);
  const typeflag = String.fromCharCode(b[156]!);
  const magic = field(b, 257, 6);
  let name = field(b, 0, 100);
  // POSIX ustar (magic "ustar\0") splits long names into prefix + name; the GNU magic
  // ("ustar  ") uses those bytes for atime/ctime/sparse data instead.
  if (magic === 'ustar') {
    const prefix = field(b, 345, 155);
    if (prefix) name = `${prefix}/${name}`;
  }
  return {
    name,
    mode: numeric(b, 100, 8, 'mode'),
    uid: numeric(b, 108, 8, 'uid'),
    gid: numeric(b, 116, 8, 'gid'),
    size: numeric(b, 124, 12, 'size'),
    mtime: numeric(b, 136, 12, 'mtime'),
    type: TYPES[typeflag] ?? 'other',
    typeflag,
    linkname: field(b, 157, 100),
    uname: field(b, 265, 32),
    gname: field(b, 297, 32),
    devmajor: numeric(b, 329, 8, 'devmajor'),
    devminor: numeric(b, 337, 8, 'devminor'),
    block: b,
  };
}

/** One PAX record. The keyword is a byte name (an xattr name in `SCHILY.xattr.<name>` is bytes); the value stays bytes. */
export interface PaxRecord {
  key: ByteName;
  value: Buffer;
}

/**
 * PAX extended header records: "%d %s=%s\n", the length counting the whole record (POSIX.1-2001
 * pax, "pax Extended Header"). Values are returned as bytes, never decoded: xattr values are
 * binary, and names are bytes whether `hdrcharset` says UTF-8 or BINARY. Records are kept in
 * order, repeats included (GNU sparse 0.0 repeats `GNU.sparse.offset`/`numbytes`).
 */
export function parsePax(data: Uint8Array): PaxRecord[] {
  const out: PaxRecord[] = [];
  const buf = Buffer.from(data.buffer, data.byteOffset, data.length);
  let pos = 0;
  while (pos < buf.length) {
    // Writers pad the record block with NULs; nothing follows them.
    if (buf[pos] === 0) break;
    const sp = buf.indexOf(0x20, pos);
    const lenText = sp < 0 ? '' : buf.toString('latin1', pos, sp);
    const len = /^[0-9]{1,10}$/.test(lenText) ? Number(lenText) : NaN;
    if (!Number.isInteger(len) || len <= sp - pos + 1 || pos + len > buf.length || buf[pos + len - 1] !== 0x0a) throw new TarFormatError('malformed PAX record');
    const rec = buf.subarray(sp + 1, pos + len - 1);
    const eq = rec.indexOf(0x3d);
    if (eq <= 0) throw new TarFormatError('malformed PAX record (no keyword)');
    out.push({ key: rec.toString('latin1', 0, eq), value: Buffer.from(rec.subarray(eq + 1)) });
    pos += len;
  }
  return out;
}

export function padded(size: number): number {
  return Math.ceil(size / BLOCK) * BLOCK;
}
