import { mkdir, readFile, rename, unlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { KEY_RE } from './chunk-store.js';

/**
 * Layer indexes under `<cacheDir>/indexes/`: small, expensive to rebuild (a full pass over the
 * layer), so they are kept when chunks are evicted. Written tmp+rename like chunks.
 */
export class DiskIndexStore {
  private seq = 0;
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
    const tmp = `${path}.tmp.${process.pid}.${this.seq++}`;
    try {
      await mkdir(this.dir, { recursive: true, mode: 0o700 });
      await writeFile(tmp, data, { mode: 0o600 });
      await rename(tmp, path);
    } catch (e) {
      await unlink(tmp).catch(() => {});
      throw e;
    }
  }
}
