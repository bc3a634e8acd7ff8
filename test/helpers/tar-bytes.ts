/**
 * Hand-made tar blocks for unit tests of the parser: exact bytes, including the ones real tools
 * will not write (non-UTF-8 names in every header form, negative base-256 times, old GNU sparse).
 */
const BLOCK = 512;

export interface HeaderSpec {
  name?: Buffer | string;
  prefix?: Buffer | string;
  linkname?: Buffer | string;
  typeflag?: string;
  mode?: number;
  uid?: number;
  gid?: number;
  size?: number;
  /** Seconds; negative values are written base-256 (GNU). */
  mtime?: number;
  magic?: 'ustar' | 'gnu';
  /** Raw bytes to put at an offset (old GNU sparse fields). */
  extra?: [number, Buffer][];
}

const bytes = (v: Buffer | string | undefined): Buffer => (v === undefined ? Buffer.alloc(0) : Buffer.isBuffer(v) ? v : Buffer.from(v, 'latin1'));

function octal(b: Buffer, off: number, len: number, v: number): void {
  b.write(v.toString(8).padStart(len - 1, '0') + '\0', off, 'latin1');
}

/** Base-256, two's complement, as GNU tar writes numbers that do not fit octal. */
export function base256(b: Buffer, off: number, len: number, v: number): void {
  let x = BigInt(v);
  for (let i = off + len - 1; i >= off; i--) {
    b[i] = Number(BigInt.asUintN(8, x));
    x >>= 8n;
  }
  b[off] = b[off]! | 0x80;
}

export function header(s: HeaderSpec): Buffer {
  const b = Buffer.alloc(BLOCK);
  bytes(s.name ?? 'f').copy(b, 0, 0, 100);
  octal(b, 100, 8, s.mode ?? 0o644);
  octal(b, 108, 8, s.uid ?? 0);
  octal(b, 116, 8, s.gid ?? 0);
  octal(b, 124, 12, s.size ?? 0);
  const mtime = s.mtime ?? 1_700_000_000;
  if (mtime < 0) base256(b, 136, 12, mtime);
  else octal(b, 136, 12, mtime);
  b.write(s.typeflag ?? '0', 156, 'latin1');
  bytes(s.linkname).copy(b, 157, 0, 100);
  if ((s.magic ?? 'ustar') === 'ustar') b.write('ustar\x0000', 257, 'latin1');
  else b.write('ustar  \x00', 257, 'latin1');
  bytes(s.prefix).copy(b, 345, 0, 155);
  for (const [off, data] of s.extra ?? []) data.copy(b, off);
  b.fill(0x20, 148, 156);
  let sum = 0;
  for (const x of b) sum += x;
  b.write(sum.toString(8).padStart(6, '0') + '\0 ', 148, 'latin1');
  return b;
}

export function pad(data: Buffer): Buffer {
  return Buffer.concat([data, Buffer.alloc((BLOCK - (data.length % BLOCK)) % BLOCK)]);
}

/** One PAX record, its length prefix counting itself. */
export function paxRecord(key: string | Buffer, value: string | Buffer): Buffer {
  const body = Buffer.concat([Buffer.from(' '), bytes(key), Buffer.from('='), bytes(value), Buffer.from('\n')]);
  let len = body.length + 1;
  while (String(len).length + body.length !== len) len++;
  return Buffer.concat([Buffer.from(String(len)), body]);
}

/** A member: optional PAX header ('x'), the header, its padded data. */
export function member(s: HeaderSpec, data: Buffer = Buffer.alloc(0), pax?: Buffer[]): Buffer {
  const parts: Buffer[] = [];
  if (pax) {
    const p = Buffer.concat(pax);
    parts.push(header({ name: 'PaxHeaders/x', typeflag: 'x', size: p.length }), pad(p));
  }
  parts.push(header({ size: data.length, ...s }), pad(data));
  return Buffer.concat(parts);
}

/** GNU long name ('L') or long link ('K') record for the next member. */
export function gnuLong(type: 'L' | 'K', value: Buffer): Buffer {
  const data = Buffer.concat([value, Buffer.from([0])]);
  return Buffer.concat([header({ name: '././@LongLink', typeflag: type, size: data.length, magic: 'gnu' }), pad(data)]);
}

export function archive(...members: Buffer[]): Buffer {
  return Buffer.concat([...members, Buffer.alloc(2 * BLOCK)]);
}
