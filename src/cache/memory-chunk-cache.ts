import { LRUCache } from 'lru-cache';

/**
 * The last few chunks in memory. The kernel asks for 128 KiB at a time; without this, each
 * request of a 1 MiB chunk would read and checksum the whole chunk file again.
 */
export class MemoryChunkCache {
  private readonly lru: LRUCache<string, Buffer>;

  constructor(maxBytes: number) {
    this.lru = new LRUCache<string, Buffer>({ maxSize: Math.max(1, maxBytes), sizeCalculation: (b) => Math.max(1, b.length) });
  }

  get(key: string): Buffer | undefined {
    return this.lru.get(key);
  }

  set(key: string, data: Buffer): void {
    this.lru.set(key, data);
  }

  delete(key: string): void {
    this.lru.delete(key);
  }
}
