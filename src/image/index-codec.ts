import { promisify } from 'node:util';
import { deflateRaw, gunzip, gzip, inflateRaw } from 'node:zlib';
import type { Checkpoint } from './gzip-index.js';
import type { TarEntry } from './tar-entry.js';

const gz = promisify(gzip);
const gunz = promisify(gunzip);
const defl = promisify(deflateRaw);
const infl = promisify(inflateRaw);

export interface LayerIndex {
  format: 'gzip' | 'tar';
  compressedSize: number;
  uncompressedSize: number;
  entries: TarEntry[];
  checkpoints: Checkpoint[];
}

const VERSION = 1;
const TYPES: TarEntry['type'][] = ['file', 'hardlink', 'symlink', 'chardev', 'blockdev', 'dir', 'fifo'];

type Row = [string, number, number, number, number, number, number, string, number, number, number, Record<string, string>?];

/** Serialises a layer index: gzip'd JSON, windows deflated (they are text-like and shrink well). */
export async function encodeIndex(ix: LayerIndex): Promise<Buffer> {
  const rows: Row[] = ix.entries.map((e) => {
    const r: Row = [e.path, TYPES.indexOf(e.type), e.mode, e.uid, e.gid, e.size, e.mtimeMs, e.linkname, e.devmajor, e.devminor, e.dataOffset];
    if (e.xattrs) r.push(e.xattrs);
    return r;
  });
  const checkpoints = await Promise.all(ix.checkpoints.map(async (c) => [c.in, c.bits, c.out, c.window.length ? (await defl(c.window)).toString('base64') : '']));
  return gz(Buffer.from(JSON.stringify({ v: VERSION, format: ix.format, compressedSize: ix.compressedSize, uncompressedSize: ix.uncompressedSize, rows, checkpoints })));
}

/** The index, or undefined when the bytes are not a valid index of this version (then it is rebuilt). */
export async function decodeIndex(data: Buffer): Promise<LayerIndex | undefined> {
  try {
    const j = JSON.parse((await gunz(data)).toString('utf8')) as {
      v: number;
      format: 'gzip' | 'tar';
      compressedSize: number;
      uncompressedSize: number;
      rows: Row[];
      checkpoints: [number, number, number, string][];
    };
    if (j.v !== VERSION || (j.format !== 'gzip' && j.format !== 'tar')) return undefined;
    const entries: TarEntry[] = j.rows.map((r) => ({
      path: r[0], type: TYPES[r[1]]!, mode: r[2], uid: r[3], gid: r[4], size: r[5], mtimeMs: r[6], linkname: r[7], devmajor: r[8], devminor: r[9], dataOffset: r[10], xattrs: r[11],
    }));
    const checkpoints = await Promise.all(
      j.checkpoints.map(async ([i, bits, out, w]) => ({ in: i, bits, out, window: w ? await infl(Buffer.from(w, 'base64')) : Buffer.alloc(0) })),
    );
    return { format: j.format, compressedSize: j.compressedSize, uncompressedSize: j.uncompressedSize, entries, checkpoints };
  } catch {
    return undefined;
  }
}
