import { type RawHeader, TarFormatError, parsePax } from './tar-header.js';

/** One member of a layer tar, with extended headers applied. */
export interface TarEntry {
  /** Normalised path without leading "./" or "/", no trailing "/". */
  path: string;
  type: 'file' | 'hardlink' | 'symlink' | 'chardev' | 'blockdev' | 'dir' | 'fifo';
  mode: number;
  uid: number;
  gid: number;
  size: number;
  mtimeMs: number;
  linkname: string;
  devmajor: number;
  devminor: number;
  xattrs?: Record<string, string> | undefined;
  /** Offset of the file's bytes in the uncompressed tar stream. */
  dataOffset: number;
}

/**
 * Folds PAX ('x', 'g') and GNU long-name ('L', 'K') records into the header that follows them,
 * as tar readers do. Push headers in order; get entries out.
 */
export class TarEntryAssembler {
  private global = new Map<string, string>();
  private pending = new Map<string, string>();
  private longName: string | undefined;
  private longLink: string | undefined;

  /** Whether the header's data is metadata we need to read before the next header. */
  static needsData(h: RawHeader): boolean {
    return h.type === 'pax' || h.type === 'pax-global' || h.type === 'gnu-longname' || h.type === 'gnu-longlink';
  }

  /** Returns the entry for a real member, or undefined for a metadata record (consumed here). */
  add(h: RawHeader, dataOffset: number, data?: Uint8Array): TarEntry | undefined {
    switch (h.type) {
      case 'pax':
        for (const [k, v] of parsePax(data ?? new Uint8Array())) this.pending.set(k, v);
        return undefined;
      case 'pax-global':
        for (const [k, v] of parsePax(data ?? new Uint8Array())) this.global.set(k, v);
        return undefined;
      case 'gnu-longname':
        this.longName = Buffer.from(data ?? []).toString('utf8').replace(/\0+$/, '');
        return undefined;
      case 'gnu-longlink':
        this.longLink = Buffer.from(data ?? []).toString('utf8').replace(/\0+$/, '');
        return undefined;
      case 'other':
        this.reset();
        throw new TarFormatError(`unsupported tar entry type ${JSON.stringify(h.typeflag)} for ${h.name}`);
      default:
        break;
    }
    const pax = new Map([...this.global, ...this.pending]);
    const name = pax.get('path') ?? this.longName ?? h.name;
    const linkname = pax.get('linkpath') ?? this.longLink ?? h.linkname;
    const num = (k: string, d: number): number => {
      const v = pax.get(k);
      return v !== undefined && /^\d+(\.\d+)?$/.test(v) ? Number(v) : d;
    };
    let xattrs: Record<string, string> | undefined;
    for (const [k, v] of pax) {
      if (k.startsWith('SCHILY.xattr.')) (xattrs ??= {})[k.slice('SCHILY.xattr.'.length)] = v;
    }
    this.reset();
    return {
      path: normalisePath(name),
      type: h.type as TarEntry['type'],
      mode: h.mode & 0o7777,
      uid: num('uid', h.uid),
      gid: num('gid', h.gid),
      size: h.type === 'file' ? num('size', h.size) : 0,
      mtimeMs: Math.round(num('mtime', h.mtime) * 1000),
      linkname,
      devmajor: h.devmajor,
      devminor: h.devminor,
      xattrs,
      dataOffset,
    };
  }

  /** Size of the data that follows a header (PAX may override it). */
  dataSize(h: RawHeader): number {
    if (TarEntryAssembler.needsData(h)) return h.size;
    const s = this.pending.get('size') ?? this.global.get('size');
    return s !== undefined && /^\d+$/.test(s) ? Number(s) : h.type === 'file' ? h.size : 0;
  }

  private reset(): void {
    this.pending = new Map();
    this.longName = undefined;
    this.longLink = undefined;
  }
}

/** `./a/b/` → `a/b`; the root itself is "". */
export function normalisePath(p: string): string {
  let s = p.replace(/\/+/g, '/');
  while (s.startsWith('./')) s = s.slice(2);
  s = s.replace(/^\/+/, '').replace(/\/$/, '');
  return s === '.' ? '' : s;
}
