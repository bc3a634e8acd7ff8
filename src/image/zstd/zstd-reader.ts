import type { Digest } from '../../lib/digest.js';
import { AbortedError } from '../../lib/errors.js';
import type { Logger } from '../../lib/logger.js';
import { SingleFlight } from '../../lib/single-flight.js';
import { LayerFormatError } from '../errors.js';
import type { TarStreamReader } from '../formats/entry-read.js';
import type { ReadBlob, SpanCache } from '../gzip-reader.js';
import type { DerivedStore } from '../layer.js';
import type { ZstdIndex } from './zstd-index.js';
import { ZstdStreamDecoder, decodeZstdPrefixAsync } from './zstd-decode.js';
import { PIECE, isStoredSpan, pieceKey } from './zstd-spans.js';
import { copyFromPieces, spanIndexAt } from '../checkpointed-read.js';

const READ_STEP = 4 << 20;

interface Redecode {
  /** Pieces already handed out by this pass. */
  passed: number;
  waiters: Map<number, { resolve: (b: Buffer) => void; reject: (e: unknown) => void }[]>;
}

/**
 * Random access into a plain tar+zstd stream through its frame checkpoints. A short span is
 * decoded whole from its frame start (fetching only its compressed bytes) and kept in the span
 * cache; a long span's bytes come from the pieces the first pass stored, and only when those were
 * evicted is the span decoded again from its start (one pass shared by all readers, logged).
 */
export class ZstdRandomReader implements TarStreamReader {
  private readonly spanFlights = new SingleFlight<number, Buffer>();
  private readonly redecodes = new Map<number, Redecode>();

  constructor(
    private readonly digest: Digest,
    private readonly index: ZstdIndex & { compressedSize: number },
    private readonly readBlob: ReadBlob,
    private readonly spans: SpanCache,
    private readonly derived: DerivedStore | undefined,
    private readonly log: Logger,
  ) {}

  async read(offset: number, into: Uint8Array, signal?: AbortSignal): Promise<number> {
    const end = Math.min(offset + into.length, this.index.uncompressedSize);
    if (offset >= end) return 0;
    const parts: { data: Promise<Buffer>; start: number }[] = [];
    for (let at = offset; at < end; ) {
      const i = this.spanAt(at);
      const { start, length } = this.spanBounds(i);
      if (isStoredSpan(length)) {
        const k = Math.floor((at - start) / PIECE);
        parts.push({ data: this.piece(i, k), start: start + k * PIECE });
        at = Math.min(end, start + (k + 1) * PIECE);
      } else {
        parts.push({ data: this.span(i), start });
        at = Math.min(end, start + length);
      }
    }
    const datas = await Promise.all(parts.map((p) => p.data));
    // The kernel's buffer may be gone once the signal fires: copy only while it is not.
    if (signal?.aborted) throw new AbortedError({ digest: this.digest });
    return copyFromPieces(datas, parts.map((p) => p.start), offset, end, into);
  }

  private spanAt(offset: number): number {
    return spanIndexAt(this.index.checkpoints, offset);
  }


  private spanBounds(i: number): { start: number; length: number; in: number; inEnd: number } {
    const cps = this.index.checkpoints;
    const cp = cps[i]!;
    const next = cps[i + 1];
    return { start: cp.out, length: (next ? next.out : this.index.uncompressedSize) - cp.out, in: cp.in, inEnd: next ? next.in : this.index.compressedSize };
  }

  /** A short span, decoded whole from its frame start. */
  private span(i: number): Promise<Buffer> {
    const key = `${this.digest}#z${i}`;
    const hit = this.spans.get(key);
    if (hit) return Promise.resolve(hit);
    return this.spanFlights.run(i, async () => {
      const b = this.spanBounds(i);
      const input = Buffer.allocUnsafe(b.inEnd - b.in);
      const n = await this.readBlob(b.in, input);
      let out: Buffer;
      try {
        out = await decodeZstdPrefixAsync(input.subarray(0, n), b.length);
      } catch (e) {
        throw new LayerFormatError(this.digest, `zstd: span ${i} does not decode: ${(e as Error).message}`);
      }
      if (out.length !== b.length) throw new LayerFormatError(this.digest, `zstd: span ${i} decoded to ${out.length} bytes, expected ${b.length}`);
      this.spans.set(key, out);
      return out;
    });
  }

  /** Piece `k` of a long span: memory, then the stored piece, then a pass over the span. */
  private async piece(i: number, k: number): Promise<Buffer> {
    const memKey = `${this.digest}#z${i}p${k}`;
    const hit = this.spans.get(memKey);
    if (hit) return hit;
    const stored = await this.derived?.get(pieceKey(this.digest, i, k));
    const b = this.spanBounds(i);
    const want = Math.min(PIECE, b.length - k * PIECE);
    if (stored && stored.length === want) {
      this.spans.set(memKey, stored);
      return stored;
    }
    return new Promise((resolve, reject) => {
      let pass = this.redecodes.get(i);
      if (!pass || pass.passed > k) pass = this.redecode(i);
      const list = pass.waiters.get(k) ?? [];
      list.push({ resolve, reject });
      pass.waiters.set(k, list);
    });
  }

  /** Decodes span `i` from its frame start, storing every piece and handing out those waited for. */
  private redecode(i: number): Redecode {
    const pass: Redecode = { passed: 0, waiters: new Map() };
    this.redecodes.set(i, pass);
    const b = this.spanBounds(i);
    this.log.info({ layer: this.digest, span: i, bytes: b.length }, 'decoding a zstd span again: its stored bytes were evicted from the cache');
    const run = async (): Promise<void> => {
      let handed = 0;
      let piece = Buffer.allocUnsafe(Math.min(PIECE, b.length));
      let filled = 0;
      const done: { k: number; data: Buffer }[] = [];
      const decoder = new ZstdStreamDecoder(
        (out) => {
          for (let at = 0; at < out.length && handed < b.length; ) {
            const n = Math.min(out.length - at, piece.length - filled);
            out.copy(piece, filled, at, at + n);
            filled += n;
            at += n;
            if (filled === piece.length) {
              done.push({ k: pass.passed++, data: piece });
              handed += piece.length;
              piece = Buffer.allocUnsafe(Math.min(PIECE, b.length - handed));
              filled = 0;
            }
          }
        },
        () => {},
      );
      const input = Buffer.allocUnsafe(READ_STEP);
      for (let at = b.in; at < b.inEnd && handed < b.length; ) {
        const n = await this.readBlob(at, input.subarray(0, Math.min(READ_STEP, b.inEnd - at)));
        if (n === 0) break;
        try {
          decoder.push(input.subarray(0, n));
        } catch (e) {
          throw new LayerFormatError(this.digest, `zstd: span ${i} does not decode: ${(e as Error).message}`);
        }
        at += n;
        for (const { k, data } of done.splice(0)) {
          this.spans.set(`${this.digest}#z${i}p${k}`, data);
          await this.derived?.put(pieceKey(this.digest, i, k), data);
          for (const w of pass.waiters.get(k) ?? []) w.resolve(data);
          pass.waiters.delete(k);
        }
      }
      if (handed < b.length) throw new LayerFormatError(this.digest, `zstd: span ${i} decoded to fewer than its ${b.length} bytes`);
    };
    void run()
      .catch((e: unknown) => {
        for (const list of pass.waiters.values()) for (const w of list) w.reject(e);
      })
      .finally(() => {
        if (this.redecodes.get(i) === pass) this.redecodes.delete(i);
      });
    return pass;
  }
}
