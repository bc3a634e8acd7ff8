import { sha256Digest } from '../../lib/hash.js';
import { AbortedError } from '../../lib/errors.js';
import { SingleFlight } from '../../lib/single-flight.js';
import type { ReadBlob, SpanCache } from '../gzip-reader.js';
import { nativeInflate } from '../native-inflate.js';
import type { ZtocLayout } from './convert.js';
import { ZtocError } from './errors.js';
import { spanRange } from './zinfo.js';
import { copyFromPieces, spanIndexAt } from '../checkpointed-read.js';
import { readInParts } from './read-in-parts.js';

/** What is fetched ahead of a SOCI layer's first bytes (view/image-assembly.ts, soci-layer.ts). */
export const HEAD_BLOCK = 64 * 1024;

/**
 * Reads of a layer's uncompressed stream through a zTOC: each span's compressed bytes are
 * fetched, checked against the zTOC's span digest, then inflated from the span's checkpoint
 * (or, for a tar layer, served as they are). A span that fails its digest or does not inflate to
 * its length is a ZtocError: the caller stops trusting the zTOC. Nothing unchecked is returned.
 */
export class SociSpanReader {
  private readonly flights = new SingleFlight<number, Buffer>();

  constructor(
    private readonly digest: string,
    private readonly layout: ZtocLayout,
    private readonly readBlob: ReadBlob,
    private readonly cache: SpanCache,
  ) {}

  get spanCount(): number {
    return this.layout.checkpoints.length;
  }

  async read(offset: number, into: Uint8Array, signal?: AbortSignal): Promise<number> {
    const end = Math.min(offset + into.length, this.layout.uncompressedSize);
    const parts: { data: Promise<Buffer>; start: number }[] = [];
    for (let at = offset; at < end; ) {
      const i = this.spanAt(at);
      parts.push({ data: this.span(i, signal), start: this.outStart(i) });
      at = this.outEnd(i);
    }
    const spans = await Promise.all(parts.map((p) => p.data));
    if (signal?.aborted) throw new AbortedError({ digest: this.digest });
    return copyFromPieces(spans, parts.map((p) => p.start), offset, end, into);
  }

  /**
   * The first `length` bytes of the stream (for checking the TOC against the layer's first
   * header). Input is read up to the 64 KiB mark of the blob first, the block image assembly
   * fetches ahead: the first member's header is almost always in it, and a read past it would
   * cost a round trip of its own. Only when that does not inflate far enough is more read.
   */
  async head(length: number, signal?: AbortSignal): Promise<Buffer> {
    const cp = this.layout.checkpoints[0]!;
    const range = spanRange(this.layout.checkpoints, 0, this.layout.compressedSize);
    const want = Math.min(length, this.outEnd(0));
    for (let reach = HEAD_BLOCK; ; reach += HEAD_BLOCK) {
      const input = Buffer.allocUnsafe(Math.max(0, Math.min(range.end, reach) - range.start));
      const n = await this.readBlob(range.start, input, signal);
      const out = this.layout.format === 'tar' ? input.subarray(0, Math.min(n, length)) : inflateFrom(cp, input.subarray(0, n), want, this.digest, 0, true);
      if (out.length >= want || n < input.length || range.start + n >= range.end || reach >= range.start + 4 * HEAD_BLOCK) return out;
    }
  }

  private outStart(i: number): number {
    return this.layout.checkpoints[i]!.out;
  }

  private outEnd(i: number): number {
    const next = this.layout.checkpoints[i + 1];
    return next ? next.out : this.layout.uncompressedSize;
  }

  private spanAt(offset: number): number {
    return spanIndexAt(this.layout.checkpoints, offset);
  }


  private span(i: number, signal?: AbortSignal): Promise<Buffer> {
    const key = `soci:${this.digest}#${i}`;
    const hit = this.cache.get(key);
    if (hit) return Promise.resolve(hit);
    return this.flights.run(i, async () => {
      const data = await this.load(i, signal);
      this.cache.set(key, data);
      return data;
    });
  }

  private async load(i: number, signal?: AbortSignal): Promise<Buffer> {
    const { start, end } = spanRange(this.layout.checkpoints, i, this.layout.compressedSize);
    const input = Buffer.allocUnsafe(end - start);
    const n = await readInParts(this.readBlob, start, input, signal);
    if (n !== input.length) throw new ZtocError(`span ${i} ends at ${start + n}, before ${end}`, this.digest);
    const want = this.layout.spanDigests[i];
    if (want !== undefined) {
      const got = sha256Digest(input);
      if (got !== want) throw new ZtocError(`span ${i} (bytes ${start}-${end}) has digest ${got}, the zTOC says ${want}`, this.digest);
    }
    const outLen = this.outEnd(i) - this.outStart(i);
    if (this.layout.format === 'tar') return input;
    return inflateFrom(this.layout.checkpoints[i]!, input, outLen, this.digest, i, false);
  }
}

/**
 * Inflates `outLen` bytes from a checkpoint (zran.c: prime the leftover bits, set the window).
 * A span may cross gzip member boundaries (SOCI does not checkpoint member starts): after a
 * member's end its 8-byte trailer and the next member's header are skipped and inflation goes
 * on with a fresh stream. `partial` allows stopping short (for a look at the first header).
 */
function inflateFrom(cp: { in: number; bits: number; window: Buffer }, input: Buffer, outLen: number, digest: string, span: number, partial: boolean): Buffer {
  const z = nativeInflate();
  const out = Buffer.allocUnsafe(outLen);
  let produced = 0;
  let pos = 0;
  let h = z.create();
  try {
    if (cp.bits) {
      z.prime(h, cp.bits, input[0]! >> (8 - cp.bits));
      pos = 1;
    }
    if (cp.window.length) z.setDictionary(h, cp.window);
    while (produced < outLen) {
      const [consumed, made, , status] = z.inflate(h, input, pos, input.length - pos, out, produced, outLen - produced, false);
      pos += consumed;
      produced += made;
      if (status === -3) throw new ZtocError(`span ${span} does not inflate from its checkpoint (corrupt deflate data)`, digest);
      if (status === 1) {
        if (produced >= outLen) break;
        pos += 8;
        const hdr = gzipHeaderLength(input, pos);
        if (hdr === undefined) break;
        pos += hdr;
        z.end(h);
        h = z.create();
        continue;
      }
      if (consumed === 0 && made === 0) break;
    }
  } finally {
    z.end(h);
  }
  if (produced !== outLen && !partial) throw new ZtocError(`span ${span} inflated to ${produced} bytes, the zTOC says ${outLen}`, digest);
  return produced === outLen ? out : out.subarray(0, produced);
}

/** RFC 1952 §2.3 member header length at `p`, or undefined when there is none. */
function gzipHeaderLength(b: Buffer, p: number): number | undefined {
  if (b.length < p + 10 || b[p] !== 0x1f || b[p + 1] !== 0x8b || b[p + 2] !== 8) return undefined;
  const flg = b[p + 3]!;
  let q = p + 10;
  if (flg & 4) {
    if (b.length < q + 2) return undefined;
    q += 2 + b.readUInt16LE(q);
  }
  for (const bit of [8, 16]) {
    if (flg & bit) {
      const z = b.indexOf(0, q);
      if (z < 0) return undefined;
      q = z + 1;
    }
  }
  if (flg & 2) q += 2;
  return q <= b.length ? q - p : undefined;
}
