import { BLOCK, TarFormatError, isZeroBlock, padded, parseHeader, type RawHeader } from './tar-header.js';
import { TarEntryAssembler, type TarEntry } from './tar-entry.js';

/** Tars are archives, not bombs: metadata records larger than this are refused. */
const MAX_META = 1 << 20;

/**
 * A push parser over an uncompressed tar stream: feed bytes in order, entries come out with the
 * offset of their data. The gzip indexer feeds it everything; the plain-tar walker feeds headers
 * and jumps over data with `skipTo`.
 */
export class TarStreamParser {
  readonly entries: TarEntry[] = [];
  private readonly assembler = new TarEntryAssembler();
  private pos = 0;
  private header = Buffer.alloc(BLOCK);
  private headerFill = 0;
  private skip = 0;
  private meta: { h: RawHeader; buf: Buffer; fill: number; padding: number } | undefined;
  private zeroBlocks = 0;
  ended = false;

  /** Offset in the tar stream of the next byte the parser expects. */
  get position(): number {
    return this.pos;
  }

  /** Bytes of file data the parser will ignore next (the walker may jump over them). */
  get skippable(): number {
    return this.meta ? 0 : this.skip;
  }

  skipTo(offset: number): void {
    const n = offset - this.pos;
    if (n < 0 || n > this.skip) throw new Error('skipTo outside the skippable range');
    this.skip -= n;
    this.pos = offset;
  }

  push(chunk: Uint8Array): void {
    let i = 0;
    while (i < chunk.length && !this.ended) {
      if (this.skip > 0) {
        const n = Math.min(this.skip, chunk.length - i);
        this.skip -= n;
        this.pos += n;
        i += n;
        continue;
      }
      if (this.meta) {
        const m = this.meta;
        const n = Math.min(m.buf.length - m.fill, chunk.length - i);
        m.buf.set(chunk.subarray(i, i + n), m.fill);
        m.fill += n;
        this.pos += n;
        i += n;
        if (m.fill === m.buf.length) {
          this.meta = undefined;
          this.assembler.add(m.h, this.pos, m.buf);
          this.skip = m.padding;
        }
        continue;
      }
      const n = Math.min(BLOCK - this.headerFill, chunk.length - i);
      this.header.set(chunk.subarray(i, i + n), this.headerFill);
      this.headerFill += n;
      this.pos += n;
      i += n;
      if (this.headerFill < BLOCK) continue;
      this.headerFill = 0;
      this.onHeader();
    }
  }

  private onHeader(): void {
    if (isZeroBlock(this.header)) {
      // Two zero blocks end the archive; many writers stop after one, or pad further.
      if (++this.zeroBlocks >= 2) this.ended = true;
      return;
    }
    this.zeroBlocks = 0;
    const h = parseHeader(this.header);
    if (TarEntryAssembler.needsData(h)) {
      if (h.size > MAX_META) throw new TarFormatError(`metadata record of ${h.size} bytes for ${h.name}`);
      this.meta = { h, buf: Buffer.alloc(h.size), fill: 0, padding: padded(h.size) - h.size };
      if (h.size === 0) {
        this.meta = undefined;
        this.assembler.add(h, this.pos, new Uint8Array());
      }
      return;
    }
    const size = this.assembler.dataSize(h);
    const entry = this.assembler.add(h, this.pos);
    if (entry) this.entries.push(entry);
    this.skip = padded(size);
  }
}
