import { createHash } from 'node:crypto';
import type { BlobReader } from '../lib/blob-reader.js';
import type { Digest } from '../lib/digest.js';
import { digestAlgorithm } from '../lib/digest.js';
import { AbortedError, ProtocolError } from '../lib/errors.js';
import type { Logger } from '../lib/logger.js';
import { silentLogger } from '../lib/logger.js';
import { Semaphore } from '../lib/semaphore.js';
import type { ChunkStore } from '../cache/chunk-store.js';
import type { MemoryChunkCache } from '../cache/memory-chunk-cache.js';
import { chunkKey, metaKey } from './chunk-key.js';
import { type ReaderCounters, newReaderCounters } from './counters.js';

export interface ChunkReaderOptions {
  chunkSize: number;
  /** Upper bound of one coalesced range request for a reader that waits. */
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
  /** Recently used chunks kept in memory, so 128 KiB kernel reads do not re-read a chunk file. */
  hot?: MemoryChunkCache;
  /** Hash a blob once all its chunks are present (default on). */
  verifyBlobs?: boolean;
  logger?: Logger;
}

interface Pending {
  index: number;
  resolve: (b: Buffer) => void;
  reject: (e: unknown) => void;
  /** Removes the chunk from the in-flight table. */
  done: () => void;
}

/** Where blob bytes come from on a miss; the registry fetcher in production, a fake in tests. */
export type Upstream = BlobReader;

/**
 * `readAt` through a chunk store: aligns to chunks, serves what is on disk, fetches the rest with
 * adjacent misses coalesced into one range request, shares in-flight fetches between readers
 * (single-flight), and writes fetched chunks back to the store.
 */
export class ChunkReader implements BlobReader {
  readonly counters: ReaderCounters = newReaderCounters();
  private readonly inflight = new Map<string, Promise<Buffer>>();
  /** Chunk key → moves its queued fetch ahead (set while the fetch waits for a slot). */
  private readonly promoters = new Map<string, () => void>();
  private readonly sizes = new Map<string, Promise<number>>();
  private readonly global: Semaphore;
  private readonly perBlob = new Map<string, { sem: Semaphore; users: number }>();
  private readonly verifying = new Set<string>();
  private readonly log: Logger;
  private readonly pendingWrites = new Set<Promise<void>>();
  /** Fetched bytes not yet on disk; fetching pauses above the limit so memory stays bounded. */
  private pendingWriteBytes = 0;
  private readonly writeWaiters: (() => void)[] = [];

  constructor(
    private readonly store: ChunkStore,
    private readonly upstream: Upstream,
    private readonly opts: ChunkReaderOptions,
  ) {
    this.global = new Semaphore(opts.globalConcurrency);
    this.log = opts.logger ?? silentLogger;
  }

  get chunkSize(): number {
    return this.opts.chunkSize;
  }

  /** Blob size: memory, then the store (no network after a restart), then upstream. */
  size(digest: Digest, signal?: AbortSignal): Promise<number> {
    let p = this.sizes.get(digest);
    if (!p) {
      p = (async () => {
        const stored = await this.store.get(metaKey(digest, 'size'));
        if (stored && stored.length === 8) return Number(stored.readBigUInt64LE(0));
        const n = await this.upstream.size(digest, signal);
        const b = Buffer.alloc(8);
        b.writeBigUInt64LE(BigInt(n));
        await this.store.put(metaKey(digest, 'size'), b);
        return n;
      })();
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
    const cs = this.opts.chunkSize;
    const first = Math.floor(offset / cs);
    const last = Math.floor((end - 1) / cs);
    // Fetches are shared between readers, so they are not tied to this caller's signal; the
    // registry's retry budget bounds them. The signal only guards the copy below.
    const chunks = await Promise.all(this.chunks(digest, size, first, last, undefined, true));
    if (signal?.aborted) throw new AbortedError({ digest });
    let copied = 0;
    for (let i = first; i <= last; i++) {
      const data = chunks[i - first]!;
      const chunkStart = i * cs;
      const from = Math.max(offset, chunkStart) - chunkStart;
      const to = Math.min(end, chunkStart + data.length) - chunkStart;
      if (to - from < 0 || chunkStart + data.length < Math.min(end, chunkStart + cs)) {
        throw new ProtocolError(`chunk ${i} of ${digest} is ${data.length} bytes, expected more`, { digest });
      }
      into.set(data.subarray(from, to), copied);
      copied += to - from;
    }
    this.counters.bytesServed += copied;
    return copied;
  }

  /**
   * Makes sure chunks covering [offset, offset+length) are cached or being fetched (read-ahead);
   * with `near`, chunks already on disk are also loaded into the memory cache.
   */
  prefetch(digest: Digest, offset: number, length: number, size: number, near = false): Promise<void> {
    const end = Math.min(size, offset + length);
    if (offset >= end) return Promise.resolve();
    const cs = this.opts.chunkSize;
    // Only what is missing: chunks already on disk stay there, and loading them into memory here
    // would push the chunks being read right now out of the hot cache.
    const waits: Promise<Buffer>[] = [];
    let runStart = -1;
    const first = Math.floor(offset / cs);
    const last = Math.floor((end - 1) / cs);
    // Right after a sequential reader, chunks on disk are read into memory now, so the reader
    // finds them there instead of waiting for the disk one chunk at a time.
    const warmUpTo = near ? last : first - 1;
    for (let i = first; i <= warmUpTo; i++) {
      const key = chunkKey(digest, cs, i);
      if (this.opts.hot && !this.opts.hot.get(key) && !this.inflight.has(key) && this.store.has(key)) waits.push(...this.chunks(digest, size, i, i, undefined, false));
    }
    for (let i = first; i <= last + 1; i++) {
      const missing = i <= last && !this.isCachedOrInFlight(digest, i);
      if (missing && runStart < 0) runStart = i;
      if (!missing && runStart >= 0) {
        waits.push(...this.chunks(digest, size, runStart, i - 1, undefined, false));
        runStart = -1;
      }
    }
    return Promise.all(waits).then(() => undefined);
  }

  /** Whether a chunk is on disk or on its way (read-ahead uses it to skip work). */
  isCachedOrInFlight(digest: Digest, index: number): boolean {
    const k = chunkKey(digest, this.opts.chunkSize, index);
    return this.inflight.has(k) || this.store.has(k);
  }

  /** Resolves when background cache writes have finished (tests, shutdown). */
  async flush(): Promise<void> {
    while (this.pendingWrites.size > 0) await Promise.all([...this.pendingWrites]);
  }

  /**
   * One promise per chunk in [first, last]. Chunks already in flight are shared; the rest are
   * looked up on disk and the misses fetched in coalesced runs.
   */
  private chunks(digest: Digest, size: number, first: number, last: number, signal: AbortSignal | undefined, urgent: boolean): Promise<Buffer>[] {
    const cs = this.opts.chunkSize;
    const out: Promise<Buffer>[] = [];
    const mine: Pending[] = [];
    for (let i = first; i <= last; i++) {
      const key = chunkKey(digest, cs, i);
      const hot = this.opts.hot?.get(key);
      if (hot) {
        this.counters.chunkHits++;
        out.push(Promise.resolve(hot));
        continue;
      }
      let p = this.inflight.get(key);
      // A reader now waits for a chunk that read-ahead queued: move that fetch to the front.
      if (p && urgent) this.promoters.get(key)?.();
      if (!p) {
        let resolve!: (b: Buffer) => void;
        let reject!: (e: unknown) => void;
        p = new Promise<Buffer>((res, rej) => {
          resolve = res;
          reject = rej;
        });
        p.catch(() => {}); // observed by the readers that await it
        this.inflight.set(key, p);
        const entry = p;
        // Stays in flight until the chunk is on disk, so a reader arriving in between neither
        // misses the store nor fetches again.
        const done = (): void => void (this.inflight.get(key) === entry && this.inflight.delete(key));
        mine.push({ index: i, resolve, reject, done });
      }
      out.push(p);
    }
    if (mine.length > 0) {
      void this.load(digest, size, mine, signal, urgent).catch((e: unknown) => {
        for (const m of mine) {
          m.reject(e); // no-op for the ones already settled
          m.done();
        }
      });
    }
    return out;
  }

  private async load(
    digest: Digest,
    size: number,
    mine: Pending[],
    signal: AbortSignal | undefined,
    urgent: boolean,
  ): Promise<void> {
    const cs = this.opts.chunkSize;
    const found = await Promise.all(mine.map((m) => this.store.get(chunkKey(digest, cs, m.index)).catch(() => undefined)));
    const missing: Pending[] = [];
    mine.forEach((m, j) => {
      const data = found[j];
      const expected = Math.min(cs, size - m.index * cs);
      if (data && data.length === expected) {
        this.counters.chunkHits++;
        this.opts.hot?.set(chunkKey(digest, cs, m.index), data);
        m.resolve(data);
        m.done();
      } else missing.push(m);
    });
    // Adjacent misses become one request, up to maxRequestBytes each.
    const limit = urgent ? this.opts.maxRequestBytes : (this.opts.prefetchRequestBytes ?? this.opts.maxRequestBytes);
    const maxChunks = Math.max(1, Math.floor(limit / cs));
    const runs: Pending[][] = [];
    for (const m of missing) {
      const run = runs[runs.length - 1];
      if (run && run[run.length - 1]!.index === m.index - 1 && run.length < maxChunks) run.push(m);
      else runs.push([m]);
    }
    await Promise.all(runs.map((run) => this.fetchRun(digest, size, run, signal, urgent)));
  }

  private async fetchRun(
    digest: Digest,
    size: number,
    run: Pending[],
    signal: AbortSignal | undefined,
    urgent: boolean,
  ): Promise<void> {
    const cs = this.opts.chunkSize;
    const start = run[0]!.index * cs;
    const end = Math.min(size, (run[run.length - 1]!.index + 1) * cs);
    const blob = this.blobSemaphore(digest);
    try {
      while (this.pendingWriteBytes > (this.opts.maxPendingWriteBytes ?? 64 << 20)) {
        await new Promise<void>((r) => this.writeWaiters.push(r));
      }
      // Both semaphores are waited for with a promotable ticket: while this run waits, a reader
      // that needs one of its chunks can move it ahead of other read-ahead.
      const keys = run.map((m) => chunkKey(digest, cs, m.index));
      let promoted = urgent;
      let ticket = blob.sem.acquire(urgent);
      const promote = (): void => {
        promoted = true;
        ticket.promote();
      };
      for (const k of keys) this.promoters.set(k, promote);
      const releaseBlob = await ticket.ready;
      ticket = this.global.acquire(promoted);
      const releaseGlobal = await ticket.ready;
      for (const k of keys) this.promoters.delete(k);
      const buf = await (async () => {
        try {
          const b = Buffer.allocUnsafe(end - start);
          this.counters.requests++;
          if (run.length > 1) this.counters.coalescedRequests++;
          this.counters.inFlightBytes += b.length;
          this.counters.peakInFlightBytes = Math.max(this.counters.peakInFlightBytes, this.counters.inFlightBytes);
          try {
            const n = await this.upstream.readAt(digest, start, b, signal);
            if (n !== b.length) throw new ProtocolError(`blob ${digest} ended at ${start + n}, expected ${end} bytes`, { digest, range: { start, end } });
            return b;
          } finally {
            this.counters.inFlightBytes -= b.length;
          }
        } finally {
          releaseGlobal();
          releaseBlob();
        }
      })();
      this.counters.bytesFetched += buf.length;
      this.counters.chunkMisses += run.length;
      const writes: Promise<void>[] = [];
      this.pendingWriteBytes += buf.length;
      for (const m of run) {
        const off = m.index * cs - start;
        const data = buf.subarray(off, Math.min(buf.length, off + cs));
        this.opts.hot?.set(chunkKey(digest, cs, m.index), data);
        m.resolve(data);
        writes.push(this.store.put(chunkKey(digest, cs, m.index), data).finally(m.done));
      }
      this.track(
        Promise.all(writes)
          .finally(() => {
            this.pendingWriteBytes -= buf.length;
            for (const w of this.writeWaiters.splice(0)) w();
          })
          .then(() => this.maybeVerify(digest, size)),
      );
    } catch (e) {
      for (const m of run) {
        m.reject(e);
        m.done();
      }
    } finally {
      if (--blob.users === 0) this.perBlob.delete(digest);
    }
  }

  private blobSemaphore(digest: Digest): { sem: Semaphore; users: number } {
    let b = this.perBlob.get(digest);
    if (!b) {
      b = { sem: new Semaphore(this.opts.perBlobConcurrency), users: 0 };
      this.perBlob.set(digest, b);
    }
    b.users++;
    return b;
  }

  private track(p: Promise<void>): void {
    const t = p.catch((e: unknown) => this.log.warn({ err: (e as Error).message }, 'background cache work failed'));
    this.pendingWrites.add(t);
    void t.finally(() => this.pendingWrites.delete(t));
  }

  /**
   * Once every chunk of a blob is on disk, hash it against its digest (once). A mismatch means
   * the registry or the disk handed us wrong bytes: purge the blob and say so.
   */
  private async maybeVerify(digest: Digest, size: number): Promise<void> {
    if (this.opts.verifyBlobs === false || this.verifying.has(digest)) return;
    const cs = this.opts.chunkSize;
    const count = Math.ceil(size / cs);
    if (this.store.has(metaKey(digest, 'verified'))) return;
    for (let i = 0; i < count; i++) if (!this.store.has(chunkKey(digest, cs, i))) return;
    this.verifying.add(digest);
    try {
      const algo = digestAlgorithm(digest);
      const h = createHash(algo);
      for (let i = 0; i < count; i++) {
        const data = await this.store.get(chunkKey(digest, cs, i));
        if (!data) return; // evicted meanwhile: verify another time
        h.update(data);
      }
      const actual = `${algo}:${h.digest('hex')}`;
      this.counters.blobsVerified++;
      if (actual === digest) {
        await this.store.put(metaKey(digest, 'verified'), Buffer.from('1'));
        return;
      }
      this.counters.blobsPurged++;
      this.log.error({ digest, actual }, `blob ${digest} hashes to ${actual}; purged from the cache`);
      for (let i = 0; i < count; i++) {
        this.opts.hot?.delete(chunkKey(digest, cs, i));
        await this.store.delete(chunkKey(digest, cs, i));
      }
    } finally {
      this.verifying.delete(digest);
    }
  }
}
