import { TarFormatError } from './errors.js';
import { type SparseSegment, sparseMapProblem } from './sparse.js';
import { type AssembledEntry, TarEntryAssembler, type TarEntry } from './tar-entry.js';
import { BLOCK, isZeroBlock, padded, parseHeader, type RawHeader } from './tar-header.js';
import { MAX_SPARSE1_MAP, oldGnuSparseExt, parseSparse1Map } from './tar-sparse.js';

/** Tars are archives, not bombs: metadata records larger than this are refused. */
const MAX_META = 1 << 20;

/** Reading a sparse map block by block: at the start of the data (1.0) or in extension blocks (old GNU). */
interface MapRead {
  a: AssembledEntry;
  blocks: Buffer[];
  map: SparseSegment[];
}

/**
 * A push parser over an uncompressed tar stream: feed bytes in order, entries come out with the
 * offset of their data. The gzip indexer feeds it everything; the plain-tar walker feeds headers
 * and jumps over data with `skipTo`.
 */
export class TarStreamParser {
  readonly entries: TarEntry[] = [];
  private readonly assembler = new TarEntryAssembler();
  private pos = 0;
  private block = Buffer.alloc(BLOCK);
  private blockFill = 0;
  private skip = 0;
  private meta: { h: RawHeader; buf: Buffer; fill: number; padding: number } | undefined;
  private mapRead: MapRead | undefined;
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
      const n = Math.min(BLOCK - this.blockFill, chunk.length - i);
      this.block.set(chunk.subarray(i, i + n), this.blockFill);
      this.blockFill += n;
      this.pos += n;
      i += n;
      if (this.blockFill < BLOCK) continue;
      this.blockFill = 0;
      if (this.mapRead) this.onMapBlock(this.mapRead);
      else this.onHeader();
    }
  }

  private onHeader(): void {
    if (isZeroBlock(this.block)) {
      // Two zero blocks end the archive; many writers stop after one, or pad further.
      if (++this.zeroBlocks >= 2) this.ended = true;
      return;
    }
    this.zeroBlocks = 0;
    const h = parseHeader(Buffer.from(this.block));
    if (TarEntryAssembler.needsData(h)) {
      if (h.size > MAX_META) throw new TarFormatError(`metadata record of ${h.size} bytes for ${JSON.stringify(h.name)}`);
      this.meta = { h, buf: Buffer.alloc(h.size), fill: 0, padding: padded(h.size) - h.size };
      if (h.size === 0) {
        this.meta = undefined;
        this.assembler.add(h, this.pos, new Uint8Array());
      }
      return;
    }
    const a = this.assembler.add(h, this.pos);
    if (!a) return;
    if (a.follow === 'sparse1-map' && a.storedSize === 0) a.entry.problem = 'GNU sparse 1.0 member without data for its map';
    if (a.follow && !a.entry.problem) this.mapRead = { a, blocks: [], map: a.entry.sparse ?? [] };
    else this.finish(a, 0);
  }

  /** One more block of a sparse map. */
  private onMapBlock(r: MapRead): void {
    const b = Buffer.from(this.block);
    if (r.a.follow === 'gnu-sparse-ext') {
      // Extension blocks sit between the header and the data; the data size does not count them.
      const ext = oldGnuSparseExt(b);
      r.map.push(...ext.map);
      if (ext.extended) return;
      this.mapRead = undefined;
      r.a.entry.sparse = r.map;
      r.a.entry.dataOffset = this.pos;
      this.finish(r.a, 0);
      return;
    }
    // GNU sparse 1.0: the map is the first blocks of the data area.
    r.blocks.push(b);
    const data = Buffer.concat(r.blocks);
    const parsed = parseSparse1Map(data);
    if (parsed === 'more' && data.length < Math.min(MAX_SPARSE1_MAP, r.a.storedSize)) return;
    this.mapRead = undefined;
    if (parsed === 'more') r.a.entry.problem = 'GNU sparse 1.0 map does not end inside the data';
    else if ('problem' in parsed) r.a.entry.problem = parsed.problem;
    else {
      r.a.entry.sparse = parsed.map;
      r.a.entry.dataOffset += parsed.bytes;
    }
    this.finish(r.a, data.length);
  }

  /** Checks the map, records the entry and skips its data (`consumed` bytes of it already read). */
  private finish(a: AssembledEntry, consumed: number): void {
    const e = a.entry;
    if (e.sparse && !e.problem) {
      const stored = a.storedSize - (e.dataOffset - (this.pos - consumed));
      const why = sparseMapProblem(e.sparse, e.size, stored);
      if (why) e.problem = why;
    }
    if (e.problem) e.sparse = undefined;
    this.entries.push(e);
    this.skip = Math.max(0, padded(a.storedSize) - consumed);
  }
}
