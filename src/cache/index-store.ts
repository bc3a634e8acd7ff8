import { mkdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { writeFileAtomic } from '../lib/atomic-write.js';
import { KEY_RE } from './chunk-store.js';

/**
 * Layer indexes under `<cacheDir>/indexes/`: small, expensive to rebuild (a full pass over the
 * layer), so they are kept when chunks are evicted. Written atomically (writeFileAtomic).
 */
export class DiskIndexStore {
  constructor(private readonly dir: string) {}

  static async open(cacheDir: string): Promise<DiskIndexStore> {
    const dir = join(cacheDir, 'indexes');
    await mkdir(dir, { recursive: true, mode: 0o700 });
    return new DiskIndexStore(dir);
  }

  async load(key: string): Promise<Buffer | undefined> {
    if (!KEY_RE.test(key)) return undefined;
    return readFile(join(this.dir, key)).catch(() => undefined);
  }

  async save(key: string, data: Buffer): Promise<void> {
    if (!KEY_RE.test(key)) throw new Error(`invalid index key ${JSON.stringify(key)}`);
    const path = join(this.dir, key);
    await mkdir(this.dir, { recursive: true, mode: 0o700 });
    await writeFileAtomic(path, data);
  }
}
