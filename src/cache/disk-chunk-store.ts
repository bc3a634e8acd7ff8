import { mkdir, readdir, readFile, rename, rm, stat, unlink, utimes, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { crc32 } from 'node:zlib';
import { LRUCache } from 'lru-cache';
import { RegfsError } from '../lib/errors.js';
import type { Logger } from '../lib/logger.js';
import { silentLogger } from '../lib/logger.js';
import { lockCacheDir } from './cache-lock.js';
import { decodeChunk, diskSize, encodeChunk } from './chunk-file.js';
import { type CacheCounters, type ChunkStore, KEY_RE } from './chunk-store.js';

export interface DiskChunkStoreOptions {
  dir: string;
  maxBytes: number;
  logger?: Logger;
  /** Take the one-owner lock (daemon, blob, verify/prune/clear); stats reads without it. */
  lock: boolean;
}

interface Entry {
  size: number;
  touchedAt: number;
  /** Set while the file is being written: the slot is taken, the bytes are not there yet. */
  writing?: boolean;
}

const DEGRADED_RETRY_MS = 30_000;
/** Last-use times on disk are refreshed at most this often per chunk (one utimes per minute). */
const TOUCH_INTERVAL_MS = 60_000;

/**
 * Chunks as files under `<dir>/chunks/<2 hex>/<key>`, written to a temp file and renamed so a
 * crash never leaves a half chunk under a real name; every file carries a crc32 checked on read.
 * An LRU (lru-cache, sized in bytes on disk) decides what goes when the limit is reached; on
 * start it is rebuilt from the files, oldest mtime first (mtime = last use).
 */
export class DiskChunkStore implements ChunkStore {
  readonly counters: CacheCounters = { hits: 0, misses: 0, evictions: 0, corruptions: 0, writeErrors: 0, bytesWritten: 0 };
  private readonly lru: LRUCache<string, Entry>;
  private readonly log: Logger;
  private readonly madeDirs = new Set<string>();
  private degradedUntil = 0;
  private warned = false;
  private unlock: (() => Promise<void>) | undefined;
  private tmpSeq = 0;

  private constructor(private readonly opts: DiskChunkStoreOptions) {
    this.log = opts.logger ?? silentLogger;
    this.lru = new LRUCache<string, Entry>({
      maxSize: Math.max(1, opts.maxBytes),
      sizeCalculation: (e) => Math.max(1, e.size),
      dispose: (_e, key, reason) => {
        if (reason !== 'evict') return;
        this.counters.evictions++;
        unlink(this.pathOf(key)).catch(() => {});
      },
    });
  }

  static async open(opts: DiskChunkStoreOptions): Promise<DiskChunkStore> {
    const s = new DiskChunkStore(opts);
    try {
      await mkdir(join(opts.dir, 'chunks'), { recursive: true, mode: 0o700 });
    } catch (e) {
      throw new RegfsError('ERR_CACHE_DIR', `cannot create cache dir ${opts.dir}: ${(e as Error).message}`);
    }
    if (opts.lock) s.unlock = await lockCacheDir(opts.dir);
    await s.rebuild();
    return s;
  }

  get size(): number {
    return this.lru.calculatedSize;
  }

  get degraded(): boolean {
    return Date.now() < this.degradedUntil;
  }

  has(key: string): boolean {
    return this.lru.has(key);
  }

  keys(): string[] {
    return [...this.lru.keys()];
  }

  async get(key: string): Promise<Buffer | undefined> {
    const entry = this.lru.get(key);
    if (!entry) {
      this.counters.misses++;
      return undefined;
    }
    const path = this.pathOf(key);
    let file: Buffer;
    try {
      file = await readFile(path);
    } catch {
      // Deleted under us (cache dir removed, or evicted by a racing put): a plain miss.
      if (!entry.writing) this.lru.delete(key);
      this.counters.misses++;
      return undefined;
    }
    const decoded = decodeChunk(file);
    if ('corrupt' in decoded) {
      this.counters.corruptions++;
      this.counters.misses++;
      this.log.warn({ key, path, reason: decoded.corrupt }, 'corrupt cache chunk discarded; it will be fetched again');
      this.lru.delete(key);
      await unlink(path).catch(() => {});
      return undefined;
    }
    this.counters.hits++;
    const now = Date.now();
    if (now - entry.touchedAt > TOUCH_INTERVAL_MS) {
      entry.touchedAt = now;
      const t = new Date(now);
      utimes(path, t, t).catch(() => {});
    }
    return decoded.data;
  }

  async put(key: string, data: Uint8Array): Promise<void> {
    if (!KEY_RE.test(key)) throw new RegfsError('ERR_CACHE_KEY', `invalid cache key ${JSON.stringify(key)}`);
    const size = diskSize(data.length);
    if (size > this.opts.maxBytes || Date.now() < this.degradedUntil) return;
    const path = this.pathOf(key);
    const tmp = `${path}.tmp.${process.pid}.${this.tmpSeq++}`;
    // The LRU slot is taken now, in the order chunks were fetched, not when the write lands:
    // writes complete out of order and last use must follow the readers.
    const entry: Entry = { size, touchedAt: Date.now(), writing: true };
    this.lru.set(key, entry);
    try {
      await this.ensureDir(path);
      await writeFile(tmp, encodeChunk(data), { mode: 0o600 });
      await rename(tmp, path);
      entry.writing = false;
      // Evicted while being written: the file must not outlive its slot.
      if (this.lru.peek(key) !== entry) await unlink(path).catch(() => {});
    } catch (e) {
      if (this.lru.peek(key) === entry) this.lru.delete(key);
      await unlink(tmp).catch(() => {});
      // Any failure of the disk (whatever errno) degrades to network reads; only a bug rethrows.
      const code = (e as NodeJS.ErrnoException).code ?? '';
      if (!/^E[A-Z]+$/.test(code)) throw e;
      this.counters.writeErrors++;
      if (code === 'ENOENT') this.madeDirs.clear(); // the dir was deleted: recreate it next time
      this.degradedUntil = Date.now() + (code === 'ENOENT' ? 0 : DEGRADED_RETRY_MS);
      if (!this.warned) {
        this.warned = true;
        this.log.warn({ dir: this.opts.dir, code }, `cache dir cannot be written (${code}); reads are served from the network until it can`);
      }
      return;
    }
    if (this.warned) {
      this.warned = false;
      this.log.info({ dir: this.opts.dir }, 'cache dir is writable again');
    }
    this.counters.bytesWritten += data.length;
  }

  async delete(key: string): Promise<void> {
    this.lru.delete(key);
    await unlink(this.pathOf(key)).catch(() => {});
  }

  /** Evicts least recently used chunks until at most `bytes` are accounted. */
  async pruneTo(bytes: number): Promise<number> {
    let removed = 0;
    while (this.lru.calculatedSize > bytes) {
      const key = this.lru.rkeys().next().value;
      if (key === undefined) break;
      await this.delete(key);
      removed++;
    }
    return removed;
  }

  async clear(): Promise<void> {
    this.lru.clear();
    this.madeDirs.clear();
    await rm(join(this.opts.dir, 'chunks'), { recursive: true, force: true });
    await mkdir(join(this.opts.dir, 'chunks'), { recursive: true, mode: 0o700 });
  }

  /** Re-reads every chunk, removing the corrupt ones; returns the keys removed. */
  async verifyAll(onProgress?: (done: number, total: number) => void): Promise<string[]> {
    const bad: string[] = [];
    const keys = this.keys();
    let done = 0;
    for (const key of keys) {
      const before = this.counters.corruptions;
      await this.get(key);
      if (this.counters.corruptions > before) bad.push(key);
      onProgress?.(++done, keys.length);
    }
    return bad;
  }

  async close(): Promise<void> {
    await this.unlock?.();
    this.unlock = undefined;
  }

  pathOf(key: string): string {
    const shard = (crc32(key) & 0xff).toString(16).padStart(2, '0');
    return join(this.opts.dir, 'chunks', shard, key);
  }

  private async ensureDir(path: string): Promise<void> {
    const d = join(path, '..');
    if (this.madeDirs.has(d)) return;
    await mkdir(d, { recursive: true, mode: 0o700 });
    this.madeDirs.add(d);
  }

  private async rebuild(): Promise<void> {
    const root = join(this.opts.dir, 'chunks');
    const found: { key: string; size: number; mtime: number }[] = [];
    for (const shard of await readdir(root).catch(() => [] as string[])) {
      const dir = join(root, shard);
      for (const name of await readdir(dir).catch(() => [] as string[])) {
        const p = join(dir, name);
        // Leftovers of writes cut short by a crash: never trusted, always removed.
        if (name.includes('.tmp.') || !KEY_RE.test(name)) {
          if (this.opts.lock) await unlink(p).catch(() => {});
          continue;
        }
        const st = await stat(p).catch(() => undefined);
        if (st?.isFile()) found.push({ key: name, size: diskSize(Math.max(0, st.size - 16)), mtime: st.mtimeMs });
      }
      this.madeDirs.add(dir);
    }
    found.sort((a, b) => a.mtime - b.mtime);
    for (const f of found) this.lru.set(f.key, { size: f.size, touchedAt: f.mtime });
  }
}
