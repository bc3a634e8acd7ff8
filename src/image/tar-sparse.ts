/**
 * GNU sparse files in tar (GNU tar manual, "Storing Sparse Files" / "Sparse Formats"): the three
 * PAX encodings `tar --sparse --format=pax` writes (0.0: repeated `GNU.sparse.offset` and
 * `GNU.sparse.numbytes` records; 0.1: one `GNU.sparse.map` record; 1.0: the map as decimal lines
 * at the start of the file data) and the old GNU header form (type 'S', four map entries in the
 * header, more in extension blocks). Pure parsing; `sparse.ts` does the reading.
 */
import { type ByteName, byteName } from '../lib/byte-name.js';
import { type SparseSegment, compactMap } from './sparse.js';
import { BLOCK, type PaxRecord, field, numeric } from './tar-header.js';

/** What PAX records say about a sparse member. */
export interface PaxSparse {
  version: '0.0' | '0.1' | '1.0';
  /** The logical (real) file size. */
  realSize: number;
  /** GNU.sparse.name: the real name (the header's is `GNUSparseFile.<pid>/<name>`). */
  name?: ByteName;
  /** The map for 0.x; 1.0 keeps it in the data (`parseSparse1Map`). */
  map?: SparseSegment[];
  /** Why the records are unusable, when they are. */
  problem?: string;
}

const DECIMAL = /^[0-9]{1,16}$/;

function decimal(v: Buffer | undefined): number | undefined {
  if (v === undefined) return undefined;
  const s = v.toString('latin1');
  return DECIMAL.test(s) && Number.isSafeInteger(Number(s)) ? Number(s) : undefined;
}

function pairs(nums: (number | undefined)[]): SparseSegment[] | undefined {
  if (nums.length % 2 !== 0 || nums.some((n) => n === undefined)) return undefined;
  const map: SparseSegment[] = [];
  for (let i = 0; i < nums.length; i += 2) map.push({ offset: nums[i]!, length: nums[i + 1]! });
  return compactMap(map);
}

/** Reads the sparse records of one member's extended header (in order), or undefined when it is not sparse. */
export function paxSparse(records: readonly PaxRecord[]): PaxSparse | undefined {
  const last = new Map<string, Buffer>();
  const repeated: (number | undefined)[] = [];
  for (const r of records) {
    last.set(r.key, r.value);
    // 0.0 interleaves offset/numbytes records; their order is the map.
    if (r.key === 'GNU.sparse.offset' || r.key === 'GNU.sparse.numbytes') {
      const expectOffset = repeated.length % 2 === 0;
      repeated.push(expectOffset === (r.key === 'GNU.sparse.offset') ? decimal(r.value) : undefined);
    }
  }
  const major = last.get('GNU.sparse.major')?.toString('latin1');
  const minor = last.get('GNU.sparse.minor')?.toString('latin1');
  const nameValue = last.get('GNU.sparse.name');
  const name = nameValue ? byteName(nameValue) : undefined;
  const withName = <T extends PaxSparse>(s: T): T => (name === undefined ? s : { ...s, name });
  if (major !== undefined || minor !== undefined) {
    if (major !== '1' || minor !== '0') return withName({ version: '1.0', realSize: 0, problem: `unsupported GNU sparse version ${major}.${minor}` });
    const realSize = decimal(last.get('GNU.sparse.realsize'));
    if (realSize === undefined) return withName({ version: '1.0', realSize: 0, problem: 'GNU sparse 1.0 without a valid GNU.sparse.realsize' });
    return withName({ version: '1.0', realSize });
  }
  const mapText = last.get('GNU.sparse.map');
  if (mapText === undefined && repeated.length === 0) return undefined;
  const version = mapText !== undefined ? '0.1' : '0.0';
  const realSize = decimal(last.get('GNU.sparse.size'));
  const map = mapText !== undefined ? pairs(mapText.length ? mapText.toString('latin1').split(',').map((s) => decimal(Buffer.from(s, 'latin1'))) : []) : pairs(repeated);
  if (realSize === undefined) return withName({ version, realSize: 0, problem: `GNU sparse ${version} without a valid GNU.sparse.size` });
  if (!map) return withName({ version, realSize, problem: `GNU sparse ${version} map is malformed` });
  return withName({ version, realSize, map });
}

/** Longest 1.0 map we read before calling the member hostile: 1 MiB of decimal lines. */
export const MAX_SPARSE1_MAP = 1 << 20;

/**
 * The 1.0 map at the start of the data: decimal lines, the count then offset/length pairs,
 * padded to a block. `data` holds whole blocks read so far. Returns the map and the bytes it
 * occupies, 'more' when the map goes on past `data`, or a problem.
 */
export function parseSparse1Map(data: Uint8Array): { map: SparseSegment[]; bytes: number } | 'more' | { problem: string } {
  const nums: number[] = [];
  let pos = 0;
  let want = 1;
  while (nums.length < want) {
    const nl = data.indexOf(0x0a, pos);
    if (nl < 0) return data.length - pos > 20 ? { problem: 'GNU sparse 1.0 map has a number longer than 20 digits' } : 'more';
    const n = decimal(Buffer.from(data.subarray(pos, nl)));
    if (n === undefined) return { problem: 'GNU sparse 1.0 map has a line that is not a decimal number' };
    nums.push(n);
    if (nums.length === 1) {
      if (n > MAX_SPARSE1_MAP / 4) return { problem: `GNU sparse 1.0 map claims ${n} segments` };
      want = 1 + 2 * n;
    }
    pos = nl + 1;
  }
  const map = pairs(nums.slice(1))!;
  return { map, bytes: Math.ceil(pos / BLOCK) * BLOCK };
}

/** An old GNU sparse header (type 'S'): its map entries, whether extension blocks follow, the real size. */
export function oldGnuSparse(block: Uint8Array): { map: SparseSegment[]; extended: boolean; realSize: number } {
  return { map: oldEntries(block, 386, 4), extended: block[482] !== 0, realSize: numeric(block, 483, 12, 'sparse real size') };
}

/** An old GNU sparse extension block: 21 more entries and whether another block follows. */
export function oldGnuSparseExt(block: Uint8Array): { map: SparseSegment[]; extended: boolean } {
  return { map: oldEntries(block, 0, 21), extended: block[504] !== 0 };
}

function oldEntries(block: Uint8Array, at: number, count: number): SparseSegment[] {
  const out: SparseSegment[] = [];
  for (let i = 0; i < count; i++) {
    const off = at + i * 24;
    // An empty offset field ends the list.
    if (field(block, off, 12) === '') break;
    out.push({ offset: numeric(block, off, 12, 'sparse offset'), length: numeric(block, off + 12, 12, 'sparse length') });
  }
  return compactMap(out);
}
