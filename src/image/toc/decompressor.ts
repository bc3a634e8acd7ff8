/** Where a layer's TOC sits in the blob (compressed bytes). */
export interface TocLocation {
  offset: number;
  length: number;
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
  /**
   * What the layer's TOC digest annotation covers: the TOC JSON (eStargz) or the compressed TOC
   * bytes (zstd:chunked, which are then checked before anything decodes them).
   */
  readonly digestOf: 'json' | 'compressed';
  /** The TOC JSON from the compressed bytes at its location. Throws on bad compression or framing. */
  parseToc(raw: Buffer, maxJson: number): Promise<Buffer>;
  /**
   * The first `size` bytes that a chunk's compressed range decompresses to. The range may run on
   * into members of entries without data (directories, links), so only a prefix is wanted.
   */
  decompress(compressed: Buffer, size: number): Promise<Buffer>;
}
