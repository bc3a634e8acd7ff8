import { promisify } from 'node:util';
import { deflateRaw, gunzip, gzip, inflateRaw } from 'node:zlib';
import { isByteName } from '../lib/byte-name.js';
import type { Checkpoint } from './gzip-index.js';
import type { SparseSegment } from './sparse.js';
import type { TarEntry } from './tar-entry.js';

const gz = promisify(gzip);
const gunz = promisify(gunzip);
const defl = promisify(deflateRaw);
const infl = promisify(inflateRaw);

export interface LayerIndex {
  /** zstd checkpoints are frame starts: `bits` 0 and no window (a frame needs nothing before it). */
  format: 'gzip' | 'tar' | 'zstd';
  compressedSize: number;
  uncompressedSize: number;
  entries: TarEntry[];
  checkpoints: Checkpoint[];
}

/**
 * 2: names are byte names, xattr values base64 bytes, sparse maps and unreadable-entry reasons
 * stored. An index of another version is rebuilt (version 1 held UTF-8-decoded names and values).
 */
const VERSION = 2;
const TYPES: TarEntry['type'][] = ['file', 'hardlink', 'symlink', 'chardev', 'blockdev', 'dir', 'fifo'];

/** [path, type, mode, uid, gid, size, mtimeMs, linkname, devmajor, devminor, dataOffset, xattrs, sparse, problem] */
type Row = [string, number, number, number, number, number, number, string, number, number, number, [string, string][] | 0, number[] | 0, string | 0];

/** Serialises a layer index: gzip'd JSON (byte names are JSON strings of U+0000–U+00FF), windows deflated. */
export async function encodeIndex(ix: LayerIndex): Promise<Buffer> {
  const rows: Row[] = ix.entries.map((e) => [
    e.path,
    TYPES.indexOf(e.type),
    e.mode,
    e.uid,
    e.gid,
    e.size,
    e.mtimeMs,
    e.linkname,
    e.devmajor,
    e.devminor,
    e.dataOffset,
    e.xattrs?.size ? [...e.xattrs].map(([k, v]) => [k, v.toString('base64')]) : 0,
    e.sparse ? e.sparse.flatMap((s) => [s.offset, s.length]) : 0,
    e.problem ?? 0,
  ]);
  const checkpoints = await Promise.all(ix.checkpoints.map(async (c) => [c.in, c.bits, c.out, c.window.length ? (await defl(c.window)).toString('base64') : '']));
  return gz(Buffer.from(JSON.stringify({ v: VERSION, format: ix.format, compressedSize: ix.compressedSize, uncompressedSize: ix.uncompressedSize, rows, checkpoints })));
}

/** The on-disk index is input like any other (a damaged or hostile cache dir): every field is checked. */
class Invalid extends Error {}

function int(v: unknown, min = 0): number {
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < min) throw new Invalid();
  return v;
}

function name(v: unknown): string {
  if (typeof v !== 'string' || !isByteName(v)) throw new Invalid();
  return v;
}

const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;

function row(r: unknown): TarEntry {
  if (!Array.isArray(r) || r.length !== 14) throw new Invalid();
  const type = TYPES[int(r[1])];
  if (!type) throw new Invalid();
  const e: TarEntry = {
    path: name(r[0]),
    type,
    mode: int(r[2]),
    uid: int(r[3]),
    gid: int(r[4]),
    size: int(r[5]),
    mtimeMs: int(r[6], Number.MIN_SAFE_INTEGER),
    linkname: name(r[7]),
    devmajor: int(r[8]),
    devminor: int(r[9]),
    dataOffset: int(r[10]),
  };
  if (r[11] !== 0) {
    if (!Array.isArray(r[11])) throw new Invalid();
    e.xattrs = new Map(
      r[11].map((x: unknown) => {
        if (!Array.isArray(x) || x.length !== 2 || typeof x[1] !== 'string' || !BASE64.test(x[1])) throw new Invalid();
        return [name(x[0]), Buffer.from(x[1], 'base64')] as const;
      }),
    );
  }
  if (r[12] !== 0) {
    if (!Array.isArray(r[12]) || r[12].length % 2 !== 0) throw new Invalid();
    const flat = r[12].map((n: unknown) => int(n));
    const map: SparseSegment[] = [];
    for (let i = 0; i < flat.length; i += 2) map.push({ offset: flat[i]!, length: flat[i + 1]! });
    e.sparse = map;
  }
  if (r[13] !== 0) {
    if (typeof r[13] !== 'string') throw new Invalid();
    e.problem = r[13];
  }
  return e;
}

function checkpoint(c: unknown): [number, number, number, string] {
  if (!Array.isArray(c) || c.length !== 4 || typeof c[3] !== 'string' || !BASE64.test(c[3])) throw new Invalid();
  return [int(c[0]), int(c[1]), int(c[2]), c[3]];
}

/** The index, or undefined when the bytes are not a valid index of this version (then it is rebuilt). */
export async function decodeIndex(data: Buffer): Promise<LayerIndex | undefined> {
  try {
    const j = JSON.parse((await gunz(data)).toString('utf8')) as Record<string, unknown>;
    if (typeof j !== 'object' || j === null || j.v !== VERSION || (j.format !== 'gzip' && j.format !== 'tar' && j.format !== 'zstd')) return undefined;
    if (!Array.isArray(j.rows) || !Array.isArray(j.checkpoints)) return undefined;
    const entries = j.rows.map(row);
    const cps = j.checkpoints.map(checkpoint);
    const checkpoints = await Promise.all(cps.map(async ([i, bits, out, w]) => ({ in: i, bits, out, window: w ? await infl(Buffer.from(w, 'base64')) : Buffer.alloc(0) })));
    return { format: j.format, compressedSize: int(j.compressedSize), uncompressedSize: int(j.uncompressedSize), entries, checkpoints };
  } catch {
    return undefined;
  }
}
