import type { ByteName } from '../../lib/byte-name.js';

/**
 * A zTOC as the SOCI project defines it (awslabs/soci-snapshotter `ztoc/fbs/ztoc.fbs`): the TOC
 * of a layer's tar (one record per tar member, at the offset of its data in the uncompressed
 * stream) and the "zinfo" that lets a reader inflate any span of the layer on its own.
 * Strings are bytes in flatbuffers; names stay byte names here, PAX values stay Buffers.
 */
export interface Ztoc {
  /** `<major>.<minor>`; SOCI writes "0.9". */
  version: string;
  buildToolIdentifier: string;
  compressedArchiveSize: number;
  uncompressedArchiveSize: number;
  entries: ZtocEntry[];
  compression: CompressionInfo;
}

/** ztoc.fbs `FileMetadata`; `type` uses SOCI's words (toc_builder.go `getType`). */
export interface ZtocEntry {
  name: ByteName;
  type: ZtocEntryType;
  /** Offset of the member's data (just after its header) in the uncompressed tar. */
  offset: number;
  size: number;
  linkname: ByteName;
  mode: number;
  uid: number;
  gid: number;
  uname: ByteName;
  gname: ByteName;
  /** RFC 3339 with sub-second digits when present (Go's `time.Time.MarshalText`). */
  modTime: string;
  devmajor: number;
  devminor: number;
  /** The member's raw PAX records (the field is named `xattrs` in the schema); xattrs are the `SCHILY.xattr.` ones. */
  pax: ReadonlyMap<ByteName, Buffer>;
}

export type ZtocEntryType = 'reg' | 'dir' | 'symlink' | 'hardlink' | 'char' | 'block' | 'fifo';
export const ZTOC_ENTRY_TYPES: readonly ZtocEntryType[] = ['reg', 'dir', 'symlink', 'hardlink', 'char', 'block', 'fifo'];

/** ztoc.fbs `CompressionInfo`. `checkpoints` is the gzip zinfo blob (see zinfo.ts) or a TarZinfo table. */
export interface CompressionInfo {
  algorithm: 'gzip' | 'uncompressed';
  maxSpanId: number;
  spanDigests: string[];
  checkpoints: Buffer;
}

export const ZTOC_VERSION = '0.9';
export const PAX_XATTR_PREFIX = 'SCHILY.xattr.';

/** soci/soci_index.go: the zTOC descriptor's annotation naming its layer. */
export const ANN_LAYER_DIGEST = 'com.amazon.soci.image-layer-digest';
/** soci_index.go `defaultSpanSize` and `defaultMinLayerSize`. */
export const DEFAULT_SPAN = 4 << 20;
export const DEFAULT_MIN_LAYER_SIZE = 10 << 20;
