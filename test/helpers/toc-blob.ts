import { gzipSync } from 'node:zlib';
import { sha256Digest } from '../../src/lib/hash.js';

/** A file of an in-memory eStargz blob: its bytes split into chunks of `chunk` bytes. */
export interface TocFile {
  name: string;
  data: Buffer;
  chunk?: number;
  xattrs?: Record<string, Buffer>;
  /** Overrides the TOC's chunkDigest of chunk i (to plant a bad one). */
  badDigest?: number;
}

/** One ustar header + data, padded (POSIX.1-2001 ustar; enough for a TOC tar). */
function tarMember(name: string, data: Buffer): Buffer {
  const h = Buffer.alloc(512);
  h.write(name, 0, 'utf8');
  h.write('0000644\0', 100);
  h.write('0000000\0', 108);
  h.write('0000000\0', 116);
  h.write(`${data.length.toString(8).padStart(11, '0')}\0`, 124);
  h.write('00000000000\0', 136);
  h.write('        ', 148);
  h.write('0', 156);
  h.write('ustar\0', 257);
  h.write('00', 263);
  let sum = 0;
  for (const b of h) sum += b;
  h.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148);
  return Buffer.concat([h, data, Buffer.alloc((512 - (data.length % 512)) % 512)]);
}

/** The 51-byte eStargz footer: an empty gzip member whose extra field says where the TOC is. */
export function estargzFooter(tocOffset: number): Buffer {
  const extra = Buffer.concat([Buffer.from('SG'), Buffer.from([22, 0]), Buffer.from(`${tocOffset.toString(16).padStart(16, '0')}STARGZ`)]);
  const header = Buffer.from([0x1f, 0x8b, 8, 4, 0, 0, 0, 0, 0, 0xff, extra.length, 0]);
  // An empty stored block (as Go's gzip at NoCompression writes it), then CRC-32 and size, both 0.
  return Buffer.concat([header, extra, Buffer.from([1, 0, 0, 0xff, 0xff]), Buffer.alloc(8)]);
}

/**
 * An eStargz blob built in memory the way the estargz package lays it out: a directory entry,
 * each chunk of each file as its own gzip member, the TOC (gzip'd tar of stargz.index.json), the
 * footer. Returns the blob and the TOC digest for the annotation.
 */
export function buildEStargzBlob(files: TocFile[]): { blob: Buffer; tocDigest: string; chunkOffsets: Map<string, number[]> } {
  // The directory's tar header comes first, so no chunk starts at offset 0 (as in real eStargz).
  const parts: Buffer[] = [gzipSync(Buffer.alloc(512))];
  let at = parts[0]!.length;
  const entries: object[] = [{ name: 'dir/', type: 'dir', mode: 0o755, modtime: '2024-01-02T03:04:05Z' }];
  const chunkOffsets = new Map<string, number[]>();
  for (const f of files) {
    const size = f.chunk ?? f.data.length;
    const offsets: number[] = [];
    for (let i = 0, off = 0; off < f.data.length || i === 0; i++, off += size) {
      const piece = f.data.subarray(off, off + size);
      const member = gzipSync(piece);
      offsets.push(at);
      const digest = f.badDigest === i ? sha256Digest(Buffer.from('not this')) : sha256Digest(piece);
      const common = { offset: at, chunkOffset: off, chunkSize: f.chunk ? piece.length : 0, chunkDigest: digest };
      if (i === 0) {
        const xattrs = f.xattrs ? Object.fromEntries(Object.entries(f.xattrs).map(([k, v]) => [k, v.toString('base64')])) : undefined;
        entries.push({ name: f.name, type: 'reg', size: f.data.length, mode: 0o644, uid: 1, gid: 2, modtime: '2024-01-02T03:04:05Z', xattrs, ...common });
      } else {
        entries.push({ name: f.name, type: 'chunk', ...common });
      }
      parts.push(member);
      at += member.length;
      if (f.data.length === 0) break;
    }
    chunkOffsets.set(f.name, offsets);
  }
  const json = Buffer.from(JSON.stringify({ version: 1, entries }));
  const toc = gzipSync(Buffer.concat([tarMember('stargz.index.json', json), Buffer.alloc(1024)]));
  const blob = Buffer.concat([...parts, toc, estargzFooter(at)]);
  return { blob, tocDigest: sha256Digest(json), chunkOffsets };
}
