/** Where a layer's TOC sits in the blob (compressed bytes). */
export interface TocLocation {
  offset: number;
  length: number;
}

/** The TOC's JSON text and the digest that the layer's TOC annotation pins. */
export interface ParsedToc {
  json: Buffer;
  /** eStargz pins the JSON's digest, zstd:chunked the compressed TOC's: each decompressor says. */
  digest: string;
}

/**
 * What a TOC layer format needs from its compression, as stargz-snapshotter's
 * `estargz.Decompressor` (FooterSize, ParseFooter, ParseTOC, Reader): eStargz (gzip members) and
 * zstd:chunked (zstd frames) share everything else — TOC validation, the file tree, chunk reads
 * and their digest checks.
 */
export interface TocDecompressor {
  /** Name in logs and errors. */
  readonly format: string;
  /** Bytes at the end of the blob that hold the footer. */
  readonly footerSize: number;
  /** The TOC location from the last `footerSize` bytes, or undefined when the footer is not this format's. */
  parseFooter(tail: Buffer, blobSize: number): TocLocation | undefined;
  /** The TOC JSON from the compressed bytes at its location. Throws on bad compression or framing. */
  parseToc(raw: Buffer, maxJson: number): Promise<ParsedToc>;
  /**
   * The first `size` bytes that a chunk's compressed range decompresses to. The range may run on
   * into members of entries without data (directories, links), so only a prefix is wanted.
   */
  decompress(compressed: Buffer, size: number): Promise<Buffer>;
}
