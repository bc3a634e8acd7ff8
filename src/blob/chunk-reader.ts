import type { BlobReader } from '../lib/blob-reader.js';
import type { Digest } from '../lib/digest.js';
import { AbortedError, ProtocolError } from '../lib/errors.js';
import type { Logger } from '../lib/logger.js';
import { silentLogger } from '../lib/logger.js';
import type { BlockStore } from '../cache/block-store.js';
import { blobKey } from './blob-key.js';
import { BlobVerifier } from './blob-verifier.js';
import { type ReaderCounters, newReaderCounters } from './counters.js';
import { FetchSlots } from './fetch-slots.js';
import { WriteBack } from './write-back.js';

export interface ChunkReaderOptions {
  /** Upper bound of one range request for a reader that waits. */
  maxRequestBytes: number;
  /**
   * Upper bound of one read-ahead request (default: maxRequestBytes). Smaller read-ahead
   * requests run in parallel, which is what beats a per-connection bandwidth cap.
   */
  prefetchRequestBytes?: number;
  /** Range requests in flight, all blobs together. */
  globalConcurrency: number;
  /** Range requests in flight for one blob. */
  perBlobConcurrency: number;
  /** Fetched bytes allowed to wait for their disk write (default 64 MiB). */
  maxPendingWriteBytes?: number;
  /** Hash a blob once all its blocks are present (default on). */
  verifyBlobs?: boolean;
  logger?: Logger;
}

/** One range request: blocks [first, last] of a blob, shared by every reader that needs them. */
interface Fetch {
  start: number;
  end: number;
  data: Promise<Buffer>;
  promote: () => void;
}

/** Where blob bytes come from on a miss; the registry fetcher in production, a fake in tests. */
export type Upstream = BlobReader;

/**
 * `readAt` through the block store. Bytes on disk are one pread into the caller's buffer;
 * missing blocks are fetched as aligned ranges (a cold 4 KiB read costs one block), shared
 * between readers while in flight (single-flight per block), copied to the readers from memory,
 * and written back by the store's worker threads.
 */
export class ChunkReader implements BlobReader {
  readonly counters: ReaderCounters = newReaderCounters();
  /** Per blob: block index → the fetch bringing it, until its bytes are on disk. */
  private readonly inflight = new Map<string, Map<number, Fetch>>();
  private readonly sizes = new Map<string, Promise<number>>();
  private readonly slots: FetchSlots;
  private readonly writeBack: WriteBack;
  private readonly verifier: BlobVerifier;
  private readonly log: Logger;

  constructor(
    private readonly store: BlockStore,
    private readonly upstream: Upstream,
    private readonly opts: ChunkReaderOptions,
  ) {
    this.log = opts.logger ?? silentLogger;
    this.slots = new FetchSlots(opts.globalConcurrency, opts.perBlobConcurrency);
    this.writeBack = new WriteBack(opts.maxPendingWriteBytes ?? 64 << 20, (e) => this.log.warn({ err: (e as Error).message }, 'background cache work failed'));
    this.verifier = new BlobVerifier(store, this.counters, this.log);
  }

  /** The fetch and checksum granularity. */
  get blockSize(): number {
    return this.store.blockSize;
  }

  /** Blob size: memory, then the store (no network after a restart), then upstream. */
  size(digest: Digest, signal?: AbortSignal): Promise<number> {
    let p = this.sizes.get(digest);
    if (!p) {
      const stored = this.store.knownSize(blobKey(digest));
      p = stored !== undefined ? Promise.resolve(stored) : this.upstream.size(digest, signal);
      this.sizes.set(digest, p);
      p.catch(() => this.sizes.delete(digest));
    }
    return p;
  }

  /** Tells the reader a size learnt elsewhere (the manifest), sparing a HEAD. */
  knowSize(digest: Digest, size: number): void {
    if (!this.sizes.has(digest)) this.sizes.set(digest, Promise.resolve(size));
  }

  async readAt(digest: Digest, offset: number, into: Uint8Array, signal?: AbortSignal): Promise<number> {
    const size = await this.size(digest, signal);
    const end = Math.min(size, offset + into.length);
    if (offset >= end) return 0;
    const out = into.subarray(0, end - offset);
    const key = blobKey(digest);
    const bs = this.store.blockSize;
    const first = Math.floor(offset / bs);
    const last = Math.floor((end - 1) / bs);
    const flying = this.inflight.get(key);
    const copies: Promise<void>[] = [];
    // Walk the blocks as runs of one source each: on disk, in flight, or missing.
    for (let b = first; b <= last; ) {
      const f = flying?.get(b);
      let e = b;
      if (f) {
        while (e < last && flying!.get(e + 1) === f) e++;
        f.promote(); // a reader now waits for it
        copies.push(this.copyFetched(f, Math.max(offset, b * bs), Math.min(end, (e + 1) * bs), offset, out, signal));
      } else if (this.store.hasBlock(key, b)) {
        while (e < last && !flying?.get(e + 1) && this.store.hasBlock(key, e + 1)) e++;
        copies.push(this.copyStored(digest, key, size, Math.max(offset, b * bs), Math.min(end, (e + 1) * bs), offset, out, signal));
      } else {
        while (e < last && !flying?.get(e + 1) && !this.store.hasBlock(key, e + 1)) e++;
        for (const nf of this.startFetches(digest, key, size, b, e, true)) copies.push(this.copyFetched(nf, Math.max(offset, nf.start), Math.min(end, nf.end), offset, out, signal));
      }
      b = e + 1;
    }
    await Promise.all(copies);
    this.counters.bytesServed += out.length;
    return out.length;
  }

  /**
   * Makes sure the blocks covering [offset, offset+length) are on disk or on their way
   * (read-ahead). `near`: a reader is right behind, so these requests go before other read-ahead.
   */
  prefetch(digest: Digest, offset: number, length: number, size: number, near = false): Promise<void> {
    const end = Math.min(size, offset + length);
    if (offset >= end) return Promise.resolve();
    const key = blobKey(digest);
    const bs = this.store.blockSize;
    const last = Math.floor((end - 1) / bs);
    const flying = this.inflight.get(key);
    const waits: Promise<Buffer>[] = [];
    for (let b = Math.floor(offset / bs); b <= last; ) {
      if (flying?.get(b) || this.store.hasBlock(key, b)) {
        b++;
        continue;
      }
      let e = b;
      while (e < last && !flying?.get(e + 1) && !this.store.hasBlock(key, e + 1)) e++;
      for (const f of this.startFetches(digest, key, size, b, e, near)) waits.push(f.data);
      b = e + 1;
    }
    return Promise.all(waits).then(() => undefined);
  }

  /** Resolves when background cache work has finished (tests, shutdown). */
  async flush(): Promise<void> {
    await this.writeBack.flush();
    await this.store.flush();
  }

  // ---------- serving ----------

  private async copyFetched(f: Fetch, from: number, to: number, offset: number, out: Uint8Array, signal?: AbortSignal): Promise<void> {
    const buf = await f.data;
    // The kernel's buffer is only written while the kernel still waits for it.
    if (signal?.aborted) throw new AbortedError({});
    out.set(buf.subarray(from - f.start, to - f.start), from - offset);
  }

  private async copyStored(digest: Digest, key: string, size: number, from: number, to: number, offset: number, out: Uint8Array, signal?: AbortSignal): Promise<void> {
    if (signal?.aborted) throw new AbortedError({ digest });
    if (await this.store.read(key, from, out.subarray(from - offset, to - offset))) {
      this.counters.chunkHits++;
      return;
    }
    // Gone or corrupt since we looked: fetch those blocks again.
    const bs = this.store.blockSize;
    const fetches = this.startFetches(digest, key, size, Math.floor(from / bs), Math.floor((to - 1) / bs), true);
    await Promise.all(fetches.map((f) => this.copyFetched(f, Math.max(from, f.start), Math.min(to, f.end), offset, out, signal)));
  }

  // ---------- fetching ----------

  /** Fetches blocks [first, last] as ranges of at most the request limit; each is registered in flight. */
  private startFetches(digest: Digest, key: string, size: number, first: number, last: number, urgent: boolean): Fetch[] {
    const bs = this.store.blockSize;
    const limit = urgent ? this.opts.maxRequestBytes : (this.opts.prefetchRequestBytes ?? this.opts.maxRequestBytes);
    const perRequest = Math.max(1, Math.floor(limit / bs));
    let flying = this.inflight.get(key);
    if (!flying) this.inflight.set(key, (flying = new Map()));
    const out: Fetch[] = [];
    for (let b = first; b <= last; b += perRequest) {
      const e = Math.min(last, b + perRequest - 1);
      const f: Fetch = { start: b * bs, end: Math.min(size, (e + 1) * bs), data: Promise.resolve(Buffer.alloc(0)), promote: () => {} };
      for (let i = b; i <= e; i++) flying.set(i, f);
      f.data = this.fetchRun(digest, key, size, f, urgent, b, e);
      f.data.catch(() => {}); // observed by the readers that await it
      out.push(f);
      if (e > b) this.counters.coalescedRequests++;
    }
    return out;
  }

  /** Back-pressure, a slot, the transfer, then the write-back; the blocks leave `inflight` once on disk. */
  private async fetchRun(digest: Digest, key: string, size: number, f: Fetch, urgent: boolean, first: number, last: number): Promise<Buffer> {
    const forget = (): void => {
      const flying = this.inflight.get(key);
      if (!flying) return;
      for (let i = first; i <= last; i++) if (flying.get(i) === f) flying.delete(i);
      if (flying.size === 0) this.inflight.delete(key);
    };
    let buf: Buffer;
    try {
      await this.writeBack.room();
      const ticket = this.slots.acquire(digest, urgent);
      f.promote = ticket.promote;
      const release = await ticket.ready;
      f.promote = () => {};
      try {
        buf = await this.transfer(digest, f.start, f.end);
      } finally {
        release();
      }
    } catch (e) {
      forget();
      throw e;
    }
    this.counters.chunkMisses += last - first + 1;
    this.writeBack.track(
      buf.length,
      this.store
        .write(key, size, f.start, buf)
        .finally(forget)
        .then(() => (this.opts.verifyBlobs === false ? undefined : this.verifier.maybeVerify(digest, key))),
    );
    return buf;
  }

  /** One range request into a buffer of its own (readers copy from it until it is on disk). */
  private async transfer(digest: Digest, start: number, end: number): Promise<Buffer> {
    const b = Buffer.allocUnsafeSlow(end - start);
    this.counters.requests++;
    this.counters.inFlightBytes += b.length;
    this.counters.peakInFlightBytes = Math.max(this.counters.peakInFlightBytes, this.counters.inFlightBytes);
    try {
      // Shared between readers, so not tied to one caller's signal; the registry's retry budget bounds it.
      const n = await this.upstream.readAt(digest, start, b);
      if (n !== b.length) throw new ProtocolError(`blob ${digest} ended at ${start + n}, expected ${end} bytes`, { digest, range: { start, end } });
      this.counters.bytesFetched += n;
      return b;
    } finally {
      this.counters.inFlightBytes -= b.length;
    }
  }
}
