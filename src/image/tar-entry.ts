import { type ByteName, byteName } from '../lib/byte-name.js';
import type { SparseSegment } from './sparse.js';
import { type PaxRecord, type RawHeader, parsePax } from './tar-header.js';
import { oldGnuSparse, paxSparse } from './tar-sparse.js';

/** One member of a layer tar, with extended headers applied. Names are byte names. */
export interface TarEntry {
  /** Normalised path without leading "./" or "/", no trailing "/". */
  path: ByteName;
  type: 'file' | 'hardlink' | 'symlink' | 'chardev' | 'blockdev' | 'dir' | 'fifo';
  mode: number;
  uid: number;
  gid: number;
  /** The file's logical size (for a sparse file, holes included). */
  size: number;
  /** Milliseconds since the epoch, floored; negative before 1970. */
  mtimeMs: number;
  linkname: ByteName;
  devmajor: number;
  devminor: number;
  /** `SCHILY.xattr.<name>` records: name bytes → value bytes, exactly as stored. */
  xattrs?: Map<ByteName, Buffer> | undefined;
  /** Offset of the file's stored bytes in the uncompressed tar stream. */
  dataOffset: number;
  /** For a sparse file: its data segments; the stored bytes are their concatenation. */
  sparse?: SparseSegment[] | undefined;
  /** Why this member cannot be read (it stays visible; reads fail). */
  problem?: string | undefined;
}

/** An entry and what the stream parser still has to read for it. */
export interface AssembledEntry {
  entry: TarEntry;
  /** Bytes of the member's data area in the stream (before padding). */
  storedSize: number;
  /** The sparse map still to read: at the start of the data (1.0), or in extension blocks (old GNU). */
  follow?: 'sparse1-map' | 'gnu-sparse-ext';
}

const XATTR = 'SCHILY.xattr.';

/** A PAX decimal time ("-12.5", "1700000000.123456789") → whole milliseconds, floored. */
export function paxTimeMs(v: Buffer): number | undefined {
  const m = /^(-?)([0-9]{1,15})(?:\.([0-9]*))?$/.exec(v.toString('latin1'));
  if (!m) return undefined;
  const frac = (m[3] ?? '').padEnd(3, '0');
  const ms = Number(m[2]) * 1000 + Number(frac.slice(0, 3));
  if (m[1] !== '-') return ms;
  // Flooring a negative time rounds away from zero when digits below a millisecond remain.
  return -(ms + (/[1-9]/.test(frac.slice(3)) ? 1 : 0));
}

function decimal(v: Buffer | undefined): number | undefined {
  if (v === undefined) return undefined;
  const s = v.toString('latin1');
  return /^[0-9]{1,16}$/.test(s) && Number.isSafeInteger(Number(s)) ? Number(s) : undefined;
}

/**
 * Folds PAX ('x', 'g') and GNU long-name ('L', 'K') records into the header that follows them,
 * as tar readers do. Push headers in order; get entries out.
 *
 * PAX values are bytes. `path`/`linkpath` are taken as the name bytes whether `hdrcharset` is
 * BINARY (raw bytes by definition) or absent (UTF-8 by POSIX, and UTF-8 bytes are the bytes GNU
 * tar and Go's archive/tar — umoci, containerd — put on disk): no decoding either way, so
 * nothing is lost or merged.
 */
export class TarEntryAssembler {
  private pending: PaxRecord[] = [];
  private longName: ByteName | undefined;
  private longLink: ByteName | undefined;

  /** Whether the header's data is metadata we need to read before the next header. */
  static needsData(h: RawHeader): boolean {
    return h.type === 'pax' || h.type === 'pax-global' || h.type === 'gnu-longname' || h.type === 'gnu-longlink';
  }

  /** Returns the entry for a real member, or undefined for a metadata record (consumed here). */
  add(h: RawHeader, dataOffset: number, data?: Uint8Array): AssembledEntry | undefined {
    switch (h.type) {
      case 'pax':
        this.pending.push(...parsePax(data ?? new Uint8Array()));
        return undefined;
      case 'pax-global':
        // Parsed (a malformed one is still a bad tar) but not applied: Go's archive/tar hands a
        // global header to its caller as an entry of its own, which Docker and containerd skip
        // ("PAX Global Extended Headers found and ignored"; umoci 0.4.7 refuses the layer), so
        // its records change no file in a container runtime. git archive writes one per tar.
        parsePax(data ?? new Uint8Array());
        return undefined;
      case 'gnu-longname':
        this.longName = cString(data);
        return undefined;
      case 'gnu-longlink':
        this.longLink = cString(data);
        return undefined;
      default:
        break;
    }
    const pax = new Map(this.pending.map((r) => [r.key, r.value]));
    const sparse = paxSparse(this.pending);
    const longName = this.longName;
    const longLink = this.longLink;
    this.reset();

    const paxName = pax.get('path');
    const paxLink = pax.get('linkpath');
    const name = sparse?.name ?? (paxName ? byteName(paxName) : undefined) ?? longName ?? h.name;
    const linkname = (paxLink ? byteName(paxLink) : undefined) ?? longLink ?? h.linkname;
    let xattrs: Map<ByteName, Buffer> | undefined;
    // Within one header the last record of a keyword wins.
    for (const [k, v] of pax) if (k.startsWith(XATTR) && k.length > XATTR.length) (xattrs ??= new Map()).set(k.slice(XATTR.length), v);

    const storedSize = this.storedSizeWith(h, pax);
    const entry: TarEntry = {
      path: normalisePath(name),
      type: 'file',
      mode: h.mode & 0o7777,
      uid: decimal(pax.get('uid')) ?? h.uid,
      gid: decimal(pax.get('gid')) ?? h.gid,
      size: 0,
      mtimeMs: (pax.has('mtime') ? paxTimeMs(pax.get('mtime')!) : undefined) ?? h.mtime * 1000,
      linkname: '',
      devmajor: h.devmajor,
      devminor: h.devminor,
      xattrs,
      dataOffset,
    };
    switch (h.type) {
      case 'file':
        entry.size = storedSize;
        if (sparse) {
          entry.size = sparse.realSize;
          if (sparse.problem) entry.problem = sparse.problem;
          else if (sparse.map) entry.sparse = sparse.map;
          else return { entry, storedSize, follow: 'sparse1-map' };
        }
        return { entry, storedSize };
      case 'gnu-sparse': {
        const old = oldGnuSparse(h.block);
        entry.size = old.realSize;
        entry.sparse = old.map;
        return old.extended ? { entry, storedSize, follow: 'gnu-sparse-ext' } : { entry, storedSize };
      }
      case 'other':
        entry.size = storedSize;
        entry.problem = `unsupported tar entry type ${JSON.stringify(h.typeflag)}`;
        return { entry, storedSize };
      default:
        entry.type = h.type as TarEntry['type'];
        entry.linkname = h.type === 'hardlink' || h.type === 'symlink' ? linkname : '';
        return { entry, storedSize };
    }
  }

  /** Size of the data that follows a header in the stream (PAX `size` may override it). */
  dataSize(h: RawHeader): number {
    if (TarEntryAssembler.needsData(h)) return h.size;
    return this.storedSizeWith(h, new Map(this.pending.map((r) => [r.key, r.value])));
  }

  private storedSizeWith(h: RawHeader, pax: Map<ByteName, Buffer>): number {
    // Links, directories and devices carry no data whatever their size field says (POSIX ustar);
    // GNU sparse and unknown types do.
    if (h.type !== 'file' && h.type !== 'gnu-sparse' && h.type !== 'other') return 0;
    return decimal(pax.get('size')) ?? h.size;
  }

  private reset(): void {
    this.pending = [];
    this.longName = undefined;
    this.longLink = undefined;
  }
}

function cString(data: Uint8Array | undefined): ByteName {
  const b = data ?? new Uint8Array();
  const nul = b.indexOf(0);
  return byteName(nul < 0 ? b : b.subarray(0, nul));
}

/** `./a/b/` → `a/b`; the root itself is "". Works on byte names ('/' and '.' are single bytes). */
export function normalisePath(p: ByteName): ByteName {
  let s = p.replace(/\/+/g, '/');
  while (s.startsWith('./')) s = s.slice(2);
  s = s.replace(/^\/+/, '').replace(/\/$/, '');
  return s === '.' ? '' : s;
}
