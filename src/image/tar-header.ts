/**
 * POSIX ustar / GNU / PAX header parsing (POSIX.1-2001 pax format, GNU tar manual "Standard"),
 * pure functions over 512-byte blocks.
 */
export const BLOCK = 512;

export type TarType = 'file' | 'hardlink' | 'symlink' | 'chardev' | 'blockdev' | 'dir' | 'fifo' | 'pax' | 'pax-global' | 'gnu-longname' | 'gnu-longlink' | 'other';

export interface RawHeader {
  name: string;
  mode: number;
  uid: number;
  gid: number;
  size: number;
  mtime: number;
  type: TarType;
  typeflag: string;
  linkname: string;
  uname: string;
  gname: string;
  devmajor: number;
  devminor: number;
}

export class TarFormatError extends Error {}

const TYPES: Record<string, TarType> = {
  '0': 'file', '\0': 'file', '7': 'file', '1': 'hardlink', '2': 'symlink', '3': 'chardev', '4': 'blockdev', '5': 'dir', '6': 'fifo',
  x: 'pax', g: 'pax-global', L: 'gnu-longname', K: 'gnu-longlink',
};

function str(b: Uint8Array, off: number, len: number): string {
  let end = off;
  while (end < off + len && b[end] !== 0) end++;
  return Buffer.from(b.buffer, b.byteOffset + off, end - off).toString('utf8');
}

/** Octal, or GNU base-256 when the high bit of the first byte is set. */
function num(b: Uint8Array, off: number, len: number, field: string): number {
  if (b[off]! & 0x80) {
    let v = b[off]! & 0x7f;
    for (let i = off + 1; i < off + len; i++) v = v * 256 + b[i]!;
    if (!Number.isSafeInteger(v)) throw new TarFormatError(`${field} is too large`);
    return v;
  }
  const s = str(b, off, len).trim();
  if (s === '') return 0;
  if (!/^[0-7]+$/.test(s)) throw new TarFormatError(`${field} is not an octal number: ${JSON.stringify(s)}`);
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
  const stored = num(b, 148, 8, 'checksum');
  if (stored !== sum) throw new TarFormatError(`header checksum mismatch (stored ${stored}, computed ${sum})`);
  const typeflag = String.fromCharCode(b[156]!);
  const magic = str(b, 257, 6);
  let name = str(b, 0, 100);
  if (magic.startsWith('ustar')) {
    const prefix = str(b, 345, 155);
    if (prefix && magic === 'ustar') name = `${prefix}/${name}`;
  }
  return {
    name,
    mode: num(b, 100, 8, 'mode'),
    uid: num(b, 108, 8, 'uid'),
    gid: num(b, 116, 8, 'gid'),
    size: num(b, 124, 12, 'size'),
    mtime: num(b, 136, 12, 'mtime'),
    type: TYPES[typeflag] ?? 'other',
    typeflag,
    linkname: str(b, 157, 100),
    uname: str(b, 265, 32),
    gname: str(b, 297, 32),
    devmajor: num(b, 329, 8, 'devmajor'),
    devminor: num(b, 337, 8, 'devminor'),
  };
}

/** PAX extended header records: "%d %s=%s\n", the length counting the whole record. */
export function parsePax(data: Uint8Array): Map<string, string> {
  const out = new Map<string, string>();
  const buf = Buffer.from(data.buffer, data.byteOffset, data.length);
  let pos = 0;
  while (pos < buf.length) {
    const sp = buf.indexOf(0x20, pos);
    if (sp < 0) break;
    const len = Number(buf.toString('latin1', pos, sp));
    if (!Number.isInteger(len) || len <= 0 || pos + len > buf.length) throw new TarFormatError('malformed PAX record');
    const rec = buf.subarray(sp + 1, pos + len - 1);
    const eq = rec.indexOf(0x3d);
    if (eq > 0) out.set(rec.toString('utf8', 0, eq), rec.toString('utf8', eq + 1));
    pos += len;
  }
  return out;
}

export function padded(size: number): number {
  return Math.ceil(size / BLOCK) * BLOCK;
}
