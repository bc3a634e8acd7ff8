import { readSync } from 'node:fs';
import { type FileHandle, mkdir, open, readdir, readFile, rm, unlink } from 'node:fs/promises';
import { writeFileAtomic } from '../lib/atomic-write.js';
import { join } from 'node:path';
import { crc32 } from 'node:zlib';
import { LRUCache } from 'lru-cache';
import { RegfsError } from '../lib/errors.js';
import type { Logger } from '../lib/logger.js';
import { silentLogger } from '../lib/logger.js';
import { lockCacheDir } from './cache-lock.js';
import { IoWorkers } from './io-workers.js';
import { DATA_OFFSET, decodeHeader, encodeHeader, headerSize, MAX_SEGMENT_BLOCKS, type SegmentGeometry } from './segment-file.js';
import { type CacheCounters, KEY_RE } from './chunk-store.js';

export interface BlockStoreOptions {
  dir: string;
  maxBytes: number;
  /** Checksum and fetch granularity (default 64 KiB): a cold 4 KiB read costs one block. */
  blockSize?: number;
  /** Blocks per segment file, the unit of eviction (default: 64 MiB, at most 1/16 of maxBytes). */
  segmentBlocks?: number;
  logger?: Logger;
  /** Take the one-owner lock (daemon, blob, verify/prune/clear); stats reads without it. */
  lock: boolean;
}

/** In memory: 0 absent, 1 on disk but not read since start (verify first), 2 verified. */
const ABSENT = 0;
const UNVERIFIED = 1;
const VERIFIED = 2;

interface Segment {
  key: string;
  index: number;
  path: string;
  state: Uint8Array;
  crcs: Uint32Array;
  blocks: number;
  /** Blocks being written: accounted from the start of the write, in the order fetches arrive. */
  reserved: number;
  blobSize: number;
  verified: boolean;
  fh?: Promise<FileHandle>;
  busy: number;
  evicted: boolean;
  touchedAt: number;
  header?: { running: Promise<void>; again: boolean };
}

interface BlobEntry {
  size: number;
  segments: Map<number, Segment>;
}

export interface BlockStoreStats {
  sizeBytes: number;
  blobs: number;
  segments: number;
  blocks: number;
  fullyCachedBlobs: number;
  verifiedBlobs: number;
}

const DEGRADED_RETRY_MS = 30_000;
const TOUCH_INTERVAL_MS = 60_000;
/** Segment files kept open; reads and writes of a warm blob then cost no open(). */
const MAX_OPEN = 128;

/**
 * Blob bytes on disk, one sparse file per blob segment (`<dir>/blobs/<shard>/<key>.<n>`), a
 * record of present blocks and a crc32 per block in each file's header. A read of cached bytes is
 * one pread into the caller's buffer; a block is checksummed when written and, after a restart,
 * on its first read (a mismatch is a miss, counted). Segments are the LRU unit (lru-cache sized
 * in bytes on disk); checksums and whole-blob hashes run in worker threads.
 */
const SYNC_READ_MAX = 128 * 1024;

export class BlockStore {
  readonly counters: CacheCounters = { hits: 0, misses: 0, evictions: 0, corruptions: 0, writeErrors: 0, bytesWritten: 0 };
  readonly geometry: SegmentGeometry;
  /** Values are fresh wrappers on every set: lru-cache recomputes a size only when the value changes. */
  private readonly lru: LRUCache<string, { seg: Segment }>;
  private readonly blobs = new Map<string, BlobEntry>();
  private readonly open = new Set<Segment>();
  private readonly unlinking = new Map<string, Promise<void>>();
  private readonly madeDirs = new Set<string>();
  private readonly log: Logger;
  private readonly io = new IoWorkers(2);
  private degradedUntil = 0;
  private warned = false;
  private unlock: (() => Promise<void>) | undefined;

  private constructor(
    private readonly opts: BlockStoreOptions,
    geometry: SegmentGeometry,
  ) {
    this.log = opts.logger ?? silentLogger;
    this.geometry = geometry;
    this.lru = new LRUCache<string, { seg: Segment }>({
      maxSize: Math.max(1, opts.maxBytes),
      sizeCalculation: (w) => this.diskBytes(w.seg),
      dispose: (w, _k, reason) => {
        if (reason === 'evict') this.counters.evictions++;
        if (reason === 'evict' || reason === 'delete') this.drop(w.seg);
      },
    });
  }

  static async open(opts: BlockStoreOptions): Promise<BlockStore> {
    try {
      await mkdir(join(opts.dir, 'blobs'), { recursive: true, mode: 0o700 });
    } catch (e) {
      throw new RegfsError('ERR_CACHE_DIR', `cannot create cache dir ${opts.dir}: ${(e as Error).message}`);
    }
    const unlock = opts.lock ? await lockCacheDir(opts.dir) : undefined;
    try {
      const s = new BlockStore(opts, await BlockStore.geometryOf(opts));
      s.unlock = unlock;
      await s.rebuild();
      return s;
    } catch (e) {
      await unlock?.();
      throw e;
    }
  }

  /**
   * The block geometry is recorded in the cache dir (`geometry`), so that `cache stats` and
   * `cache verify` read a cache as its daemon wrote it. The owner that asks for another geometry
   * (a new --chunk-size) starts the cache afresh.
   */
  private static async geometryOf(opts: BlockStoreOptions): Promise<SegmentGeometry> {
    const path = join(opts.dir, 'geometry');
    let recorded: SegmentGeometry | undefined;
    try {
      const g = JSON.parse(await readFile(path, 'utf8')) as SegmentGeometry;
      if (Number.isInteger(g.blockSize) && Number.isInteger(g.segmentBlocks) && g.segmentBlocks >= 1 && g.segmentBlocks <= MAX_SEGMENT_BLOCKS) recorded = g;
    } catch {
      // absent or unreadable: a new cache
    }
    const blockSize = opts.blockSize ?? 64 << 10;
    // A segment is the unit of eviction: 64 MiB, or less so that at least 16 fit in the limit.
    let segmentBlocks = opts.segmentBlocks ?? 1024;
    if (opts.segmentBlocks === undefined) while (segmentBlocks > 1 && segmentBlocks * blockSize * 16 > opts.maxBytes) segmentBlocks >>= 1;
    if (segmentBlocks > MAX_SEGMENT_BLOCKS) throw new RangeError(`at most ${MAX_SEGMENT_BLOCKS} blocks per segment`);
    if (!opts.lock) return recorded ?? { blockSize, segmentBlocks };
    if (recorded && recorded.blockSize === blockSize && recorded.segmentBlocks === segmentBlocks) return recorded;
    // New geometry (or a cache of the 1 MiB chunk files of earlier versions): start afresh.
    await rm(join(opts.dir, 'blobs'), { recursive: true, force: true });
    await rm(join(opts.dir, 'chunks'), { recursive: true, force: true });
    await mkdir(join(opts.dir, 'blobs'), { recursive: true, mode: 0o700 });
    const g = { blockSize, segmentBlocks };
    await writeFileAtomic(path, JSON.stringify(g));
    return g;
  }

  get blockSize(): number {
    return this.geometry.blockSize;
  }

  /** Bytes accounted on disk. */
  get size(): number {
    return this.lru.calculatedSize;
  }

  get degraded(): boolean {
    return Date.now() < this.degradedUntil;
  }

  /** The blob's size as recorded beside its blocks (no network after a restart). */
  knownSize(key: string): number | undefined {
    return this.blobs.get(key)?.size;
  }

  /** Whether block `b` of the blob is on disk (verified or not). */
  hasBlock(key: string, b: number): boolean {
    const seg = this.blobs.get(key)?.segments.get(Math.floor(b / this.geometry.segmentBlocks));
    return seg !== undefined && seg.state[b % this.geometry.segmentBlocks] !== ABSENT;
  }

  /**
   * Fills `into` with the blob's bytes at `offset` if every block they touch is on disk and
   * passes its checksum; false otherwise (a miss: the caller fetches). Blocks that fail are
   * forgotten and counted as corruptions.
   */
  async read(key: string, offset: number, into: Uint8Array): Promise<boolean> {
    const blob = this.blobs.get(key);
    const end = offset + into.length;
    if (!blob || end > blob.size) return this.miss();
    const { blockSize, segmentBlocks } = this.geometry;
    const segBytes = blockSize * segmentBlocks;
    for (let pos = offset; pos < end; ) {
      const si = Math.floor(pos / segBytes);
      const segEnd = Math.min(end, (si + 1) * segBytes);
      const seg = blob.segments.get(si);
      if (!seg || !(await this.readSegment(seg, pos - si * segBytes, into.subarray(pos - offset, segEnd - offset)))) return this.miss();
      pos = segEnd;
    }
    this.counters.hits++;
    return true;
  }

  /**
   * Stores fetched bytes. `offset` is block-aligned and the bytes end on a block boundary or at
   * the end of the blob. Never throws: a disk that cannot be written degrades to a pass-through.
   */
  async write(key: string, blobSize: number, offset: number, data: Uint8Array): Promise<void> {
    if (!KEY_RE.test(key)) throw new RegfsError('ERR_CACHE_KEY', `invalid cache key ${JSON.stringify(key)}`);
    const { blockSize, segmentBlocks } = this.geometry;
    // The reader only writes whole blocks; anything else is a bug, not a disk condition.
    if (offset % blockSize !== 0) throw new RangeError(`cache write at ${offset} is not aligned to ${blockSize}`);
    if (Date.now() < this.degradedUntil || this.segmentBytes() + DATA_OFFSET > this.opts.maxBytes) return;
    const segBytes = blockSize * segmentBlocks;
    for (let pos = offset; pos < offset + data.length; ) {
      const si = Math.floor(pos / segBytes);
      const to = Math.min(offset + data.length, (si + 1) * segBytes);
      if (!(await this.writeSegment(key, blobSize, si, pos - si * segBytes, data.subarray(pos - offset, to - offset)))) return;
      pos = to;
    }
    if (this.warned) {
      this.warned = false;
      this.log.info({ dir: this.opts.dir }, 'cache dir is writable again');
    }
    this.counters.bytesWritten += data.length;
  }

  /**
   * Opaque keys → whole values that are costly to make again (decoded zstd pieces, the image
   * layer's DerivedStore): each is stored as a blob of its own, under the same bound and checks.
   */
  async get(key: string): Promise<Buffer | undefined> {
    const size = this.knownSize(key);
    if (size === undefined || size === 0 || !this.isComplete(key)) return void this.miss();
    const b = Buffer.allocUnsafe(size);
    return (await this.read(key, 0, b)) ? b : undefined;
  }

  async put(key: string, data: Uint8Array): Promise<void> {
    await this.write(key, data.length, 0, data);
  }

  /** Every block of the blob is on disk. */
  isComplete(key: string): boolean {
    const blob = this.blobs.get(key);
    if (!blob) return false;
    const blocks = Math.ceil(blob.size / this.geometry.blockSize);
    let n = 0;
    for (const s of blob.segments.values()) n += s.blocks;
    return n === blocks;
  }

  isVerified(key: string): boolean {
    const blob = this.blobs.get(key);
    return !!blob && this.isComplete(key) && [...blob.segments.values()].every((s) => s.verified);
  }

  async markVerified(key: string): Promise<void> {
    for (const s of this.blobs.get(key)?.segments.values() ?? []) {
      s.verified = true;
      await this.writeHeader(s);
    }
  }

  /** Hashes the whole cached blob in a worker thread; undefined if a block is missing. */
  async hashBlob(key: string, algo: string): Promise<string | undefined> {
    const blob = this.blobs.get(key);
    if (!blob || !this.isComplete(key)) return undefined;
    const segBytes = this.geometry.blockSize * this.geometry.segmentBlocks;
    const pieces = [...blob.segments.values()]
      .sort((a, b) => a.index - b.index)
      .map((s) => ({ path: s.path, position: DATA_OFFSET, length: Math.min(segBytes, blob.size - s.index * segBytes) }));
    try {
      return await this.io.hash(algo, pieces);
    } catch {
      return undefined; // evicted meanwhile: hash another time
    }
  }

  /** Resolves once the files of evicted segments are gone. */
  async flush(): Promise<void> {
    while (this.unlinking.size > 0) await Promise.all([...this.unlinking.values()]);
  }

  async deleteBlob(key: string): Promise<void> {
    for (const s of [...(this.blobs.get(key)?.segments.values() ?? [])]) this.lru.delete(this.idOf(s));
    await this.flush();
  }

  /** Evicts least recently used segments until at most `bytes` are accounted. */
  async pruneTo(bytes: number): Promise<number> {
    let removed = 0;
    while (this.lru.calculatedSize > bytes) {
      const id = this.lru.rkeys().next().value;
      if (id === undefined) break;
      this.lru.delete(id);
      removed++;
    }
    await this.flush();
    return removed;
  }

  async clear(): Promise<void> {
    this.lru.clear();
    await this.flush();
    this.madeDirs.clear();
    await rm(join(this.opts.dir, 'blobs'), { recursive: true, force: true });
    await mkdir(join(this.opts.dir, 'blobs'), { recursive: true, mode: 0o700 });
  }

  /** Re-reads every present block against its checksum, forgetting the bad ones; returns them as `key@offset`. */
  async verifyAll(onProgress?: (done: number, total: number) => void): Promise<{ checked: number; bad: string[] }> {
    const bad: string[] = [];
    const segs = [...this.lru.values()].map((w) => w.seg);
    const { blockSize, segmentBlocks } = this.geometry;
    let checked = 0;
    for (const [n, seg] of segs.entries()) {
      for (let b = 0; b < segmentBlocks; b++) if (seg.state[b] === VERIFIED) seg.state[b] = UNVERIFIED;
      for (let b = 0; b < segmentBlocks; b++) {
        if (seg.state[b] === ABSENT) continue;
        checked++;
        const off = b * blockSize;
        const len = Math.min(blockSize, seg.blobSize - seg.index * segmentBlocks * blockSize - off);
        const ok = await this.readSegment(seg, off, Buffer.allocUnsafe(len));
        if (!ok) bad.push(`${seg.key}@${seg.index * segmentBlocks * blockSize + off}`);
      }
      onProgress?.(n + 1, segs.length);
    }
    return { checked, bad };
  }

  stats(): BlockStoreStats {
    let segments = 0;
    let blocks = 0;
    for (const b of this.blobs.values()) {
      segments += b.segments.size;
      for (const s of b.segments.values()) blocks += s.blocks;
    }
    const keys = [...this.blobs.keys()];
    return {
      sizeBytes: this.size,
      blobs: this.blobs.size,
      segments,
      blocks,
      fullyCachedBlobs: keys.filter((k) => this.isComplete(k)).length,
      verifiedBlobs: keys.filter((k) => this.isVerified(k)).length,
    };
  }

  async close(): Promise<void> {
    for (const s of [...this.open]) await this.closeHandle(s);
    await this.io.close();
    await this.unlock?.();
    this.unlock = undefined;
  }

  /** The file of one segment (tests corrupt it on purpose). */
  pathOf(key: string, segment = 0): string {
    const shard = (crc32(key) & 0xff).toString(16).padStart(2, '0');
    return join(this.opts.dir, 'blobs', shard, `${key}.${segment}`);
  }

  // ---------- segments ----------

  private miss(): false {
    this.counters.misses++;
    return false;
  }

  private idOf(s: Segment): string {
    return `${s.key}.${s.index}`;
  }

  private segmentBytes(): number {
    return this.geometry.blockSize * this.geometry.segmentBlocks;
  }

  private diskBytes(s: Segment): number {
    return Math.max(1, DATA_OFFSET + (s.blocks + s.reserved) * this.geometry.blockSize);
  }

  private async readSegment(seg: Segment, off: number, into: Uint8Array): Promise<boolean> {
    const { blockSize } = this.geometry;
    const first = Math.floor(off / blockSize);
    const last = Math.floor((off + into.length - 1) / blockSize);
    let unverified = false;
    for (let b = first; b <= last; b++) {
      if (seg.state[b] === ABSENT) return false;
      if (seg.state[b] === UNVERIFIED) unverified = true;
    }
    if (seg.evicted) return false;
    seg.busy++;
    try {
      const fh = await this.handle(seg);
      if (!unverified) {
        // The common case: the bytes asked for, straight into the caller's (FUSE) buffer. Up to
        // one FUSE read (128 KiB) it is a synchronous pread: a verified block was written or
        // checked by this process, so it is usually still in the page cache, where pread takes
        // microseconds, while a trip through libuv's thread pool costs tens of them per read
        // (warm random 4 KiB: 5.1k → 5.8k IOPS, bench 3). A block not in the page cache costs
        // the event loop one disk read of ≤ 128 KiB.
        const bytesRead = into.length <= SYNC_READ_MAX ? readSync(fh.fd, into, 0, into.length, DATA_OFFSET + off) : (await fh.read(into, 0, into.length, DATA_OFFSET + off)).bytesRead;
        if (bytesRead !== into.length) return this.corrupt(seg, first, `short read (${bytesRead} of ${into.length})`);
      } else {
        // First read since start: whole blocks, checked against the crc recorded with them.
        const segStart = seg.index * this.segmentBytes();
        const from = first * blockSize;
        const to = Math.min((last + 1) * blockSize, seg.blobSize - segStart);
        const buf = Buffer.allocUnsafe(to - from);
        const { bytesRead } = await fh.read(buf, 0, buf.length, DATA_OFFSET + from);
        if (bytesRead !== buf.length) return this.corrupt(seg, first, `short read (${bytesRead} of ${buf.length})`);
        for (let b = first; b <= last; b++) {
          if (seg.state[b] !== UNVERIFIED) continue;
          const part = buf.subarray(b * blockSize - from, Math.min(buf.length, (b + 1) * blockSize - from));
          if (crc32(part) !== seg.crcs[b]) return this.corrupt(seg, b, 'checksum mismatch');
          seg.state[b] = VERIFIED;
        }
        Buffer.from(into.buffer, into.byteOffset, into.length).set(buf.subarray(off - from, off - from + into.length));
      }
    } catch (e) {
      // Deleted under us (cache dir removed) or unreadable: a plain miss.
      this.log.debug({ path: seg.path, err: (e as Error).message }, 'cache segment unreadable');
      if (!seg.evicted) this.lru.delete(this.idOf(seg));
      return false;
    } finally {
      seg.busy--;
      if (seg.evicted && seg.busy === 0) void this.closeHandle(seg);
    }
    this.lru.get(this.idOf(seg)); // recency
    this.touch(seg);
    return true;
  }

  private corrupt(seg: Segment, block: number, reason: string): false {
    this.counters.corruptions++;
    this.log.warn({ path: seg.path, block, reason }, 'corrupt cache block discarded; it will be fetched again');
    if (seg.state[block] !== ABSENT) {
      seg.state[block] = ABSENT;
      seg.blocks--;
      seg.verified = false;
      void this.writeHeader(seg);
      this.resize(seg);
    }
    return false;
  }

  private async writeSegment(key: string, blobSize: number, index: number, off: number, data: Uint8Array): Promise<boolean> {
    const { blockSize } = this.geometry;
    const first = off / blockSize;
    const count = Math.ceil(data.length / blockSize);
    let seg: Segment | undefined;
    let reserved = 0;
    try {
      seg = this.segment(key, blobSize, index);
      seg.busy++;
      // The space is taken now, in the order fetches arrive, not when the write lands: writes
      // complete out of order, and the last use must follow the readers.
      for (let i = first; i < first + count; i++) if (seg.state[i] === ABSENT) reserved++;
      seg.reserved += reserved;
      this.resize(seg);
      const fh = await this.handle(seg);
      for (let done = 0; done < data.length; ) {
        const { bytesWritten } = await fh.write(data, done, data.length - done, DATA_OFFSET + off + done);
        done += bytesWritten;
      }
      // Checksummed in a worker, from the page cache: the event loop only dispatches.
      const crcs = await this.io.crc(fh.fd, DATA_OFFSET + off, data.length, blockSize);
      seg.reserved -= reserved;
      reserved = 0;
      if (seg.evicted) return true;
      for (let i = 0; i < crcs.length; i++) {
        if (seg.state[first + i] === ABSENT) seg.blocks++;
        seg.state[first + i] = VERIFIED;
        seg.crcs[first + i] = crcs[i]!;
      }
      await this.writeHeader(seg);
      return true;
    } catch (e) {
      if (seg && reserved > 0) {
        seg.reserved -= reserved;
        this.resize(seg);
      }
      const code = (e as NodeJS.ErrnoException).code ?? '';
      // Any failure of the disk (whatever errno) degrades to network reads; only a bug rethrows.
      if (!/^E[A-Z]+$/.test(code)) throw e;
      this.counters.writeErrors++;
      if (seg && !seg.evicted) this.lru.delete(this.idOf(seg));
      if (code === 'ENOENT') this.madeDirs.clear(); // the dir was deleted: recreate it next time
      this.degradedUntil = Date.now() + (code === 'ENOENT' ? 0 : DEGRADED_RETRY_MS);
      if (!this.warned) {
        this.warned = true;
        this.log.warn({ dir: this.opts.dir, code, err: (e as Error).message }, `cache dir cannot be written (${code}); reads are served from the network until it can`);
      }
      return false;
    } finally {
      if (seg) {
        seg.busy--;
        if (seg.evicted && seg.busy === 0) void this.closeHandle(seg);
      }
    }
  }

  /** The segment, created (file and header) on first write. */
  private segment(key: string, blobSize: number, index: number): Segment {
    let blob = this.blobs.get(key);
    if (!blob) this.blobs.set(key, (blob = { size: blobSize, segments: new Map() }));
    const have = blob.segments.get(index);
    if (have) return have;
    const n = this.geometry.segmentBlocks;
    const seg: Segment = {
      key, index, path: this.pathOf(key, index), state: new Uint8Array(n), crcs: new Uint32Array(n), blocks: 0, reserved: 0, blobSize,
      verified: false, busy: 0, evicted: false, touchedAt: Date.now(),
    };
    blob.segments.set(index, seg);
    this.lru.set(this.idOf(seg), { seg });
    // Set before any await: a concurrent write to this segment waits for the file, never opens it.
    seg.fh = this.create(seg);
    seg.fh.catch(() => {});
    this.opened(seg);
    return seg;
  }

  /** The segment's file with an empty header (nothing present yet). */
  private async create(seg: Segment): Promise<FileHandle> {
    await this.unlinking.get(seg.path); // the evicted file of the same name goes first
    const dir = join(seg.path, '..');
    if (!this.madeDirs.has(dir)) {
      await mkdir(dir, { recursive: true, mode: 0o700 });
      this.madeDirs.add(dir);
    }
    const fh = await open(seg.path, 'w+', 0o600);
    const g = this.geometry;
    await fh.write(encodeHeader(g, { index: seg.index, blobSize: seg.blobSize, verified: false, present: new Uint8Array(g.segmentBlocks), crcs: new Uint32Array(g.segmentBlocks) }), 0, headerSize(g), 0);
    return fh;
  }

  /** Header writes of one segment run one at a time, the last always with the latest state. */
  private writeHeader(seg: Segment): Promise<void> {
    if (seg.header) {
      seg.header.again = true;
      return seg.header.running;
    }
    const state = { again: false, running: Promise.resolve() };
    seg.header = state;
    state.running = (async () => {
      try {
        do {
          state.again = false;
          if (seg.evicted) return;
          const fh = await this.handle(seg);
          await fh.write(encodeHeader(this.geometry, { index: seg.index, blobSize: seg.blobSize, verified: seg.verified, present: seg.state, crcs: seg.crcs }), 0, headerSize(this.geometry), 0);
        } while (state.again);
      } finally {
        seg.header = undefined;
      }
    })();
    return state.running;
  }

  private resize(seg: Segment): void {
    if (seg.evicted) return;
    // Re-set so lru-cache recomputes the size (and evicts others if the limit is passed).
    this.lru.set(this.idOf(seg), { seg });
  }

  private handle(seg: Segment): Promise<FileHandle> {
    if (!seg.fh) {
      seg.fh = open(seg.path, 'r+');
      seg.fh.catch(() => {});
    }
    this.opened(seg);
    return seg.fh;
  }

  /** Keeps at most MAX_OPEN segment files open, closing the least recently used idle one. */
  private opened(seg: Segment): void {
    this.open.delete(seg);
    this.open.add(seg);
    if (this.open.size <= MAX_OPEN) return;
    for (const s of this.open) {
      if (s.busy === 0 && !s.header && s !== seg) {
        void this.closeHandle(s);
        break;
      }
    }
  }

  private async closeHandle(seg: Segment): Promise<void> {
    this.open.delete(seg);
    const fh = seg.fh;
    seg.fh = undefined;
    if (fh) await (await fh.catch(() => undefined))?.close().catch(() => {});
  }

  private drop(seg: Segment): void {
    seg.evicted = true;
    const blob = this.blobs.get(seg.key);
    if (blob?.segments.get(seg.index) === seg) {
      blob.segments.delete(seg.index);
      if (blob.segments.size === 0) this.blobs.delete(seg.key);
    }
    const created = seg.fh ?? Promise.resolve();
    if (seg.busy === 0) void this.closeHandle(seg);
    // After the file exists: a segment evicted while being created must not leave it behind.
    const p = created
      .catch(() => {})
      .then(() => unlink(seg.path))
      .catch(() => {})
      .finally(() => {
        if (this.unlinking.get(seg.path) === p) this.unlinking.delete(seg.path);
      });
    this.unlinking.set(seg.path, p);
  }

  private touch(seg: Segment): void {
    const now = Date.now();
    if (now - seg.touchedAt < TOUCH_INTERVAL_MS) return;
    seg.touchedAt = now;
    void seg.fh?.then((fh) => fh.utimes(new Date(now), new Date(now))).catch(() => {});
  }

  private async rebuild(): Promise<void> {
    const root = join(this.opts.dir, 'blobs');
    const found: { seg: Segment; mtime: number }[] = [];
    const hb = Buffer.alloc(headerSize(this.geometry));
    for (const shard of await readdir(root).catch(() => [] as string[])) {
      const dir = join(root, shard);
      for (const name of await readdir(dir).catch(() => [] as string[])) {
        const p = join(dir, name);
        const m = /^(.+)\.(\d+)$/.exec(name);
        const key = m?.[1];
        const fh = m && KEY_RE.test(key!) ? await open(p, 'r').catch(() => undefined) : undefined;
        let seg: Segment | undefined;
        let mtime = 0;
        if (fh) {
          try {
            const { bytesRead } = await fh.read(hb, 0, hb.length, 0);
            const h = decodeHeader(this.geometry, hb.subarray(0, bytesRead));
            mtime = (await fh.stat()).mtimeMs;
            if (!('invalid' in h) && h.index === Number(m![2])) {
              const state = new Uint8Array(h.present.length);
              let blocks = 0;
              h.present.forEach((v, i) => {
                if (v) {
                  state[i] = UNVERIFIED;
                  blocks++;
                }
              });
              seg = { key: key!, index: h.index, path: p, state, crcs: h.crcs, blocks, reserved: 0, blobSize: h.blobSize, verified: h.verified, busy: 0, evicted: false, touchedAt: mtime };
            }
          } finally {
            await fh.close();
          }
        }
        if (seg) found.push({ seg, mtime });
        else if (this.opts.lock) await unlink(p).catch(() => {}); // not ours, or not usable with this geometry
      }
      this.madeDirs.add(dir);
    }
    found.sort((a, b) => a.mtime - b.mtime);
    for (const { seg } of found) {
      let blob = this.blobs.get(seg.key);
      if (!blob) this.blobs.set(seg.key, (blob = { size: seg.blobSize, segments: new Map() }));
      blob.segments.set(seg.index, seg);
      this.lru.set(this.idOf(seg), { seg });
    }
  }
}
