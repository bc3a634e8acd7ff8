import { displayName } from '../../lib/byte-name.js';
import type { Checkpoint } from '../gzip-index.js';
import type { LayerIndex } from '../index-codec.js';
import { BLOCK, padded } from '../tar-header.js';
import { type TarEntry, normalisePath } from '../tar-entry.js';
import { ZtocError } from './errors.js';
import { decodeGzipZinfo, decodeTarZinfo, encodeGzipZinfo, encodeTarZinfo } from './zinfo.js';
import { PAX_XATTR_PREFIX, type Ztoc, type ZtocEntry, type ZtocEntryType, ZTOC_VERSION } from './ztoc.js';

const TO_ZTOC: Record<TarEntry['type'], ZtocEntryType> = { file: 'reg', dir: 'dir', symlink: 'symlink', hardlink: 'hardlink', chardev: 'char', blockdev: 'block', fifo: 'fifo' };
const FROM_ZTOC: Record<ZtocEntryType, TarEntry['type']> = { reg: 'file', dir: 'dir', symlink: 'symlink', hardlink: 'hardlink', char: 'chardev', block: 'blockdev', fifo: 'fifo' };

/** Go's `time.Time.MarshalText` form: RFC 3339, fraction only when non-zero, trailing zeros dropped. */
export function goTime(ms: number): string {
  return new Date(ms).toISOString().replace(/\.(\d*?)0*Z$/, (_m, f: string) => (f ? `.${f}Z` : 'Z'));
}

/**
 * Our layer index → checkpoints for a zTOC with spans of about `span` output bytes: SOCI starts a
 * span when more than `span` bytes followed the last one (gzip_zinfo.c), so checkpoints of a
 * finer cached index are thinned to that rule; gzip member starts are kept (readers that do not
 * cross member boundaries need them, and SOCI's reader accepts them).
 */
export function thinCheckpoints(cps: readonly Checkpoint[], span: number): Checkpoint[] {
  const out: Checkpoint[] = [];
  let last = -Infinity;
  for (const c of cps) {
    const memberStart = c.window.length === 0;
    if (out.length === 0 || memberStart || c.out - last > span) {
      out.push(c);
      last = c.out;
    }
  }
  return out;
}

export interface ZtocBuildInput {
  index: LayerIndex;
  /** Checkpoints (gzip) already thinned to the span, or none for tar. */
  checkpoints: Checkpoint[];
  spanSize: number;
  spanDigests: string[];
  buildTool: string;
}

/**
 * A layer index (tar entries + checkpoints) → a zTOC as SOCI writes it. A TOC entry has one
 * offset and size, so sparse members (stored bytes ≠ file bytes) cannot be described, nor can a
 * member regfs refuses to serve: such a layer gets no zTOC (the caller says why).
 */
export function ztocFromIndex(x: ZtocBuildInput): Ztoc {
  const sparse = x.index.entries.find((e) => e.sparse !== undefined);
  if (sparse) throw new ZtocError(`member ${JSON.stringify(displayName(sparse.path).slice(0, 200))} is a sparse file, which a zTOC cannot describe`);
  const unreadable = x.index.entries.find((e) => e.problem !== undefined);
  if (unreadable) throw new ZtocError(`member ${JSON.stringify(displayName(unreadable.path).slice(0, 200))} cannot be served (${unreadable.problem}); a zTOC would hand it out as it is`);
  const gzip = x.index.format === 'gzip';
  const spans = gzip ? x.checkpoints.length : Math.max(1, Math.ceil(x.index.compressedSize / x.spanSize));
  if (x.spanDigests.length !== spans) throw new RangeError(`${spans} spans but ${x.spanDigests.length} digests`);
  return {
    version: ZTOC_VERSION,
    buildToolIdentifier: x.buildTool,
    compressedArchiveSize: x.index.compressedSize,
    uncompressedArchiveSize: x.index.uncompressedSize,
    entries: x.index.entries.map(toZtocEntry),
    compression: {
      algorithm: gzip ? 'gzip' : 'uncompressed',
      maxSpanId: spans - 1,
      spanDigests: x.spanDigests,
      checkpoints: gzip ? encodeGzipZinfo({ spanSize: x.spanSize, checkpoints: x.checkpoints }) : encodeTarZinfo(x.spanSize, x.index.compressedSize),
    },
  };
}

function toZtocEntry(e: TarEntry): ZtocEntry {
  const pax = new Map<string, Buffer>();
  for (const [k, v] of e.xattrs ?? []) pax.set(PAX_XATTR_PREFIX + k, v);
  return {
    // Go's archive/tar names directories with a trailing slash; the root is "./".
    name: e.path === '' ? './' : e.type === 'dir' ? `${e.path}/` : e.path,
    type: TO_ZTOC[e.type],
    offset: e.dataOffset,
    size: e.type === 'file' ? e.size : 0,
    linkname: e.type === 'symlink' || e.type === 'hardlink' ? e.linkname : '',
    mode: e.mode,
    uid: e.uid,
    gid: e.gid,
    uname: '',
    gname: '',
    modTime: goTime(e.mtimeMs),
    devmajor: e.type === 'chardev' || e.type === 'blockdev' ? e.devmajor : 0,
    devminor: e.type === 'chardev' || e.type === 'blockdev' ? e.devminor : 0,
    pax,
  };
}

/** What a verified zTOC gives a reader: the tree, and how to find and check each span. */
export interface ZtocLayout {
  format: 'gzip' | 'tar';
  compressedSize: number;
  uncompressedSize: number;
  entries: TarEntry[];
  /** gzip: SOCI's checkpoints; tar: fixed spans of `spanSize`. */
  checkpoints: Checkpoint[];
  spanSize: number;
  /** One per span, or empty when the zTOC carries none. */
  spanDigests: string[];
}

const MAX_UNCOMPRESSED = 64 * 1024 ** 3;

/**
 * Checks a decoded zTOC against the layer it claims to describe and turns it into a layout.
 * Everything a reader will later trust is checked here, so a zTOC that disagrees with its
 * layer is refused before any tree is built from it.
 */
export function layoutFromZtoc(z: Ztoc, layer: { digest: string; size: number; format: 'gzip' | 'tar' }): ZtocLayout {
  const fail = (why: string): never => {
    throw new ZtocError(why, layer.digest);
  };
  if (!/^\d+\.\d+$/.test(z.version)) fail(`version ${JSON.stringify(z.version)} is not <major>.<minor>`);
  if (z.compressedArchiveSize !== layer.size) fail(`it describes a blob of ${z.compressedArchiveSize} bytes; the layer has ${layer.size} (a TOC of another layer?)`);
  const want = layer.format === 'gzip' ? 'gzip' : 'uncompressed';
  if (z.compression.algorithm !== want) fail(`compression ${z.compression.algorithm} does not match the layer's ${want}`);
  const usize = z.uncompressedArchiveSize;
  if (!Number.isSafeInteger(usize) || usize <= 0 || usize > MAX_UNCOMPRESSED) fail(`uncompressed size ${usize} is not plausible`);
  if (layer.format === 'tar' && usize > layer.size) fail(`a tar layer of ${layer.size} bytes cannot hold ${usize}`);

  let checkpoints: Checkpoint[];
  let spanSize: number;
  if (layer.format === 'gzip') {
    const zi = decodeGzipZinfo(z.compression.checkpoints);
    checkpoints = zi.checkpoints;
    spanSize = zi.spanSize;
    checkpoints.forEach((c, i) => {
      if (c.bits > 7) fail(`checkpoint ${i} has ${c.bits} bits`);
      if (c.in < (c.bits ? 1 : 0) || c.in > layer.size) fail(`checkpoint ${i} is at compressed offset ${c.in}, beyond the ${layer.size}-byte blob`);
      if (c.out > usize) fail(`checkpoint ${i} is at uncompressed offset ${c.out}, beyond ${usize}`);
      const prev = checkpoints[i - 1];
      if (i === 0 ? c.out !== 0 : c.in <= prev!.in || c.out <= prev!.out) fail(`checkpoint ${i} does not follow checkpoint ${i - 1}`);
    });
  } else {
    const tz = decodeTarZinfo(z.compression.checkpoints);
    if (tz.size !== layer.size) fail(`tar zinfo is for ${tz.size} bytes; the layer has ${layer.size}`);
    spanSize = tz.spanSize;
    const n = Math.max(1, Math.ceil(layer.size / spanSize));
    checkpoints = Array.from({ length: n }, (_v, i) => ({ in: i * spanSize, out: i * spanSize, bits: 0, window: Buffer.alloc(0) }));
  }
  if (z.compression.maxSpanId !== checkpoints.length - 1) fail(`max_span_id ${z.compression.maxSpanId} but ${checkpoints.length} spans`);
  const digests = z.compression.spanDigests;
  if (digests.length !== 0 && digests.length !== checkpoints.length) fail(`${digests.length} span digests for ${checkpoints.length} spans`);
  for (const d of digests) if (!/^sha256:[0-9a-f]{64}$/.test(d)) fail(`span digest ${JSON.stringify(d.slice(0, 80))} is not a sha256 digest`);

  // As SOCI's reader does (ztoc_marshaler.go): entries in stream order, no member overlapping
  // the previous one; and here also nothing past the end of the stream.
  // Writers list entries in stream order already: sort (stable, ties keep their order) only when not.
  const inOrder = z.entries.every((e, i) => i === 0 || e.offset >= z.entries[i - 1]!.offset);
  const sorted = inOrder ? z.entries : [...z.entries].sort((a, b) => a.offset - b.offset);
  let next = 0;
  const entries: TarEntry[] = [];
  for (const e of sorted) {
    if (e.offset < next + BLOCK || e.size < 0 || e.offset + e.size > usize) fail(`TOC entry ${JSON.stringify(displayName(e.name).slice(0, 200))} at ${e.offset}+${e.size} does not fit the tar stream`);
    next = e.offset + padded(e.size);
    entries.push(fromZtocEntry(e));
  }
  return { format: layer.format, compressedSize: layer.size, uncompressedSize: usize, entries, checkpoints, spanSize, spanDigests: digests };
}

function fromZtocEntry(e: ZtocEntry): TarEntry {
  let xattrs: Map<string, Buffer> | undefined;
  for (const [k, v] of e.pax) if (k.startsWith(PAX_XATTR_PREFIX)) (xattrs ??= new Map()).set(k.slice(PAX_XATTR_PREFIX.length), v);
  const t = Date.parse(e.modTime);
  const type = FROM_ZTOC[e.type];
  return {
    path: normalisePath(e.name),
    type,
    mode: e.mode & 0o7777,
    uid: e.uid,
    gid: e.gid,
    size: type === 'file' ? e.size : 0,
    mtimeMs: Number.isNaN(t) ? 0 : t,
    linkname: e.linkname,
    devmajor: e.devmajor,
    devminor: e.devminor,
    xattrs,
    dataOffset: e.offset,
  };
}
