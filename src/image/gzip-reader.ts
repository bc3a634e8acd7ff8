import type { Digest } from '../lib/digest.js';
import { AbortedError } from '../lib/errors.js';
import { LayerFormatError } from './errors.js';
import type { GzipIndex } from './gzip-index.js';
import { nativeInflate } from './native-inflate.js';
import { copyFromPieces, spanIndexAt } from './checkpointed-read.js';

/** A small memory cache for decompressed spans (the daemon hands in an LRU). */
export interface SpanCache {
  get(key: string): Buffer | undefined;
  set(key: string, data: Buffer): void;
}

export type ReadBlob = (offset: number, into: Uint8Array, signal?: AbortSignal) => Promise<number>;

/**
 * Random access into a gzip stream through its checkpoint index: a read inflates the span
 * between the checkpoint at or before it and the next one (reading only that span's compressed
 * bytes), keeps the span in a small memory cache, and copies out what was asked.
 */
export class GzipRandomReader {
  private readonly inflight = new Map<number, Promise<Buffer>>();

  constructor(
    private readonly digest: Digest,
    private readonly index: GzipIndex,
    private readonly readBlob: ReadBlob,
    private readonly spans: SpanCache,
  ) {}

  get size(): number {
    return this.index.uncompressedSize;
  }

  async read(offset: number, into: Uint8Array, signal?: AbortSignal): Promise<number> {
    const end = Math.min(offset + into.length, this.index.uncompressedSize);
    if (offset >= end) return 0;
    const parts: { span: Promise<Buffer>; start: number }[] = [];
    for (let at = offset; at < end; ) {
      const i = this.spanAt(at);
      const start = this.index.checkpoints[i]!.out;
      parts.push({ span: this.span(i), start });
      at = i + 1 < this.index.checkpoints.length ? this.index.checkpoints[i + 1]!.out : end;
    }
    const spans = await Promise.all(parts.map((p) => p.span));
    // The kernel's buffer may be gone once the signal fires: copy only while it is not.
    if (signal?.aborted) throw new AbortedError({ digest: this.digest });
    return copyFromPieces(spans, parts.map((p) => p.start), offset, end, into);
  }

  /** Compressed bytes a read of span `i` needs, for tests and accounting. */
  spanCompressedRange(i: number): { start: number; end: number } {
    const cp = this.index.checkpoints[i]!;
    const next = this.index.checkpoints[i + 1];
    return { start: cp.bits ? cp.in - 1 : cp.in, end: next ? Math.min(this.index.compressedSize, next.in + 1) : this.index.compressedSize };
  }

  private spanAt(offset: number): number {
    return spanIndexAt(this.index.checkpoints, offset);
  }


  private span(i: number): Promise<Buffer> {
    const key = `${this.digest}#${i}`;
    const hit = this.spans.get(key);
    if (hit) return Promise.resolve(hit);
    let p = this.inflight.get(i);
    if (!p) {
      p = this.inflate(i).then((b) => {
        this.spans.set(key, b);
        return b;
      });
      this.inflight.set(i, p);
      void p.finally(() => this.inflight.delete(i)).catch(() => {});
    }
    return p;
  }

  private async inflate(i: number): Promise<Buffer> {
    const cps = this.index.checkpoints;
    const cp = cps[i]!;
    const outLen = (i + 1 < cps.length ? cps[i + 1]!.out : this.index.uncompressedSize) - cp.out;
    const { start, end } = this.spanCompressedRange(i);
    const input = Buffer.allocUnsafe(end - start);
    const n = await this.readBlob(start, input);
    const z = nativeInflate();
    const h = z.create();
    try {
      let inPos = 0;
      if (cp.bits) {
        z.prime(h, cp.bits, input[0]! >> (8 - cp.bits));
        inPos = 1;
      }
      if (cp.window.length) z.setDictionary(h, cp.window);
      const out = Buffer.allocUnsafe(outLen);
      let produced = 0;
      while (produced < outLen) {
        const [consumed, made, , status] = z.inflate(h, input, inPos, n - inPos, out, produced, outLen - produced, false);
        inPos += consumed;
        produced += made;
        if (status === -3) throw new LayerFormatError(this.digest, `corrupt deflate data in span ${i}`);
        if (status === 1 || (consumed === 0 && made === 0)) break;
      }
      if (produced !== outLen) throw new LayerFormatError(this.digest, `span ${i} inflated to ${produced} bytes, expected ${outLen}`);
      return out;
    } finally {
      z.end(h);
    }
  }
}
