import { Builder } from 'flatbuffers';
import { nameBytes } from '../../lib/byte-name.js';
import { ZtocError } from './errors.js';
import { FbTable, guard } from './fb-table.js';
import { type Ztoc, type ZtocEntry, type ZtocEntryType, ZTOC_ENTRY_TYPES } from './ztoc.js';

// Field indexes (vtable slots) of ztoc/fbs/ztoc.fbs, in declaration order.
const Z = { version: 0, buildTool: 1, compressedSize: 2, uncompressedSize: 3, toc: 4, compression: 5, count: 6 };
const TOC = { metadata: 0, count: 1 };
const FM = { name: 0, type: 1, offset: 2, size: 3, linkname: 4, mode: 5, uid: 6, gid: 7, uname: 8, gname: 9, modTime: 10, devmajor: 11, devminor: 12, xattrs: 13, count: 14 };
const XA = { key: 0, value: 1, count: 2 };
const CI = { algorithm: 0, maxSpanId: 1, spanDigests: 2, checkpoints: 3, count: 4 };
/** ztoc.fbs `enum CompressionAlgorithm : byte { Gzip = 1, Uncompressed }`; Gzip is the default. */
const ALGORITHM = { gzip: 1, uncompressed: 2 } as const;

/**
 * Ztoc → flatbuffers bytes. Objects are built in the order SOCI's marshaller builds them
 * (ztoc_marshaler.go: strings before their table, TOC entries last to first, PAX keys sorted,
 * default-valued scalars omitted), so the same zTOC gives the same bytes, and the same digest,
 * whichever tool wrote it.
 */
export function encodeZtoc(z: Ztoc): Buffer {
  const b = new Builder(1024);
  const version = b.createString(z.version);
  const buildTool = b.createString(z.buildToolIdentifier);
  const entries = new Array<number>(z.entries.length);
  for (let i = z.entries.length - 1; i >= 0; i--) entries[i] = encodeEntry(b, z.entries[i]!);
  b.startVector(4, entries.length, 4);
  for (let i = entries.length - 1; i >= 0; i--) b.addOffset(entries[i]!);
  const metadata = b.endVector();
  b.startObject(TOC.count);
  b.addFieldOffset(TOC.metadata, metadata, 0);
  const toc = b.endObject();

  const checkpoints = b.createByteVector(z.compression.checkpoints);
  const digests = z.compression.spanDigests.map((d) => b.createString(d));
  b.startVector(4, digests.length, 4);
  for (let i = digests.length - 1; i >= 0; i--) b.addOffset(digests[i]!);
  const spanDigests = b.endVector();
  b.startObject(CI.count);
  b.addFieldInt32(CI.maxSpanId, z.compression.maxSpanId, 0);
  b.addFieldOffset(CI.spanDigests, spanDigests, 0);
  b.addFieldOffset(CI.checkpoints, checkpoints, 0);
  b.addFieldInt8(CI.algorithm, ALGORITHM[z.compression.algorithm], ALGORITHM.gzip);
  const compression = b.endObject();

  b.startObject(Z.count);
  b.addFieldOffset(Z.version, version, 0);
  b.addFieldOffset(Z.buildTool, buildTool, 0);
  b.addFieldOffset(Z.toc, toc, 0);
  b.addFieldInt64(Z.compressedSize, BigInt(z.compressedArchiveSize), 0n);
  b.addFieldInt64(Z.uncompressedSize, BigInt(z.uncompressedArchiveSize), 0n);
  b.addFieldOffset(Z.compression, compression, 0);
  b.finish(b.endObject());
  return Buffer.from(b.asUint8Array());
}

function encodeEntry(b: Builder, e: ZtocEntry): number {
  const name = b.createString(nameBytes(e.name));
  const type = b.createString(e.type);
  const linkname = b.createString(nameBytes(e.linkname));
  const uname = b.createString(nameBytes(e.uname));
  const gname = b.createString(nameBytes(e.gname));
  const modTime = b.createString(e.modTime);
  // Go sorts keys as strings, i.e. bytewise; byte names compare the same way.
  const keys = [...e.pax.keys()].sort((x, y) => (x < y ? -1 : x > y ? 1 : 0));
  const xattrs = keys.map((k) => {
    const key = b.createString(nameBytes(k));
    const value = b.createString(e.pax.get(k)!);
    b.startObject(XA.count);
    b.addFieldOffset(XA.key, key, 0);
    b.addFieldOffset(XA.value, value, 0);
    return b.endObject();
  });
  b.startVector(4, xattrs.length, 4);
  for (let i = xattrs.length - 1; i >= 0; i--) b.addOffset(xattrs[i]!);
  const xattrVector = b.endVector();

  b.startObject(FM.count);
  b.addFieldOffset(FM.name, name, 0);
  b.addFieldOffset(FM.type, type, 0);
  b.addFieldInt64(FM.offset, BigInt(e.offset), 0n);
  b.addFieldInt64(FM.size, BigInt(e.size), 0n);
  b.addFieldOffset(FM.linkname, linkname, 0);
  b.addFieldInt64(FM.mode, BigInt(e.mode), 0n);
  b.addFieldInt32(FM.uid, e.uid | 0, 0);
  b.addFieldInt32(FM.gid, e.gid | 0, 0);
  b.addFieldOffset(FM.uname, uname, 0);
  b.addFieldOffset(FM.gname, gname, 0);
  b.addFieldOffset(FM.modTime, modTime, 0);
  b.addFieldInt64(FM.devmajor, BigInt(e.devmajor), 0n);
  b.addFieldInt64(FM.devminor, BigInt(e.devminor), 0n);
  b.addFieldOffset(FM.xattrs, xattrVector, 0);
  return b.endObject();
}

/** Hard limits for hostile zTOCs: no real layer comes near them. */
const MAX_ENTRIES = 4_000_000;

/** Flatbuffers bytes → Ztoc. Anything malformed is a ZtocError (never a crash). */
export function decodeZtoc(data: Buffer): Ztoc {
  return guard(() => decodeUnguarded(data));
}

function decodeUnguarded(data: Buffer): Ztoc {
  const root = FbTable.root(data);
  const toc = root.table(Z.toc);
  const ci = root.table(Z.compression);
  if (!toc || !ci) throw new ZtocError('the flatbuffer has no toc or no compression_info');
  const n = toc.vectorLength(TOC.metadata);
  if (n > MAX_ENTRIES) throw new ZtocError(`${n} TOC entries; refusing more than ${MAX_ENTRIES}`);
  const entries: ZtocEntry[] = [];
  for (let i = 0; i < n; i++) entries.push(decodeEntry(toc.tableAt(TOC.metadata, i), i));
  const alg = ci.int8(CI.algorithm, ALGORITHM.gzip);
  if (alg !== ALGORITHM.gzip && alg !== ALGORITHM.uncompressed) throw new ZtocError(`unknown compression algorithm ${alg}`);
  const spanDigests: string[] = [];
  for (let i = 0; i < ci.vectorLength(CI.spanDigests); i++) spanDigests.push(ci.bytesAt(CI.spanDigests, i).toString('latin1'));
  return {
    version: (root.bytes(Z.version) ?? Buffer.alloc(0)).toString('latin1'),
    buildToolIdentifier: (root.bytes(Z.buildTool) ?? Buffer.alloc(0)).toString('utf8'),
    compressedArchiveSize: root.int64(Z.compressedSize),
    uncompressedArchiveSize: root.int64(Z.uncompressedSize),
    entries,
    compression: {
      algorithm: alg === ALGORITHM.gzip ? 'gzip' : 'uncompressed',
      maxSpanId: ci.int32(CI.maxSpanId),
      spanDigests,
      checkpoints: Buffer.from(ci.bytes(CI.checkpoints) ?? Buffer.alloc(0)),
    },
  };
}

const NO_PAX: ReadonlyMap<string, Buffer> = new Map();

function decodeEntry(t: FbTable, i: number): ZtocEntry {
  const type = t.latin1(FM.type);
  if (!ZTOC_ENTRY_TYPES.includes(type as ZtocEntryType)) throw new ZtocError(`TOC entry ${i} has unknown type ${JSON.stringify(type)}`);
  const nx = t.vectorLength(FM.xattrs);
  // Most files carry no PAX records: one shared empty map instead of thousands (GC time at open, #14).
  let pax = NO_PAX;
  if (nx) {
    const m = new Map<string, Buffer>();
    for (let k = 0; k < nx; k++) {
      const x = t.tableAt(FM.xattrs, k);
      m.set(x.latin1(XA.key), Buffer.from(x.bytes(XA.value) ?? Buffer.alloc(0)));
    }
    pax = m;
  }
  return {
    name: t.latin1(FM.name),
    type: type as ZtocEntryType,
    offset: t.int64(FM.offset),
    size: t.int64(FM.size),
    linkname: t.latin1(FM.linkname),
    mode: t.int64(FM.mode),
    uid: t.uint32(FM.uid),
    gid: t.uint32(FM.gid),
    uname: t.latin1(FM.uname),
    gname: t.latin1(FM.gname),
    modTime: t.latin1(FM.modTime),
    devmajor: t.int64(FM.devmajor),
    devminor: t.int64(FM.devminor),
    pax,
  };
}
