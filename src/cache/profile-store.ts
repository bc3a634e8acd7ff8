import { mkdir, open, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { writeFileAtomic } from '../lib/atomic-write.js';
import type { Digest } from '../lib/digest.js';
import { digestAlgorithm, digestHex } from '../lib/digest.js';
import { TooLargeError } from '../lib/errors.js';

/**
 * Access profiles (#15) under `<cacheDir>/profiles/<alg>-<hex>.json`, one per image manifest
 * digest. Like layer indexes they are small and kept when chunks are evicted: a profile is what
 * makes a mount fast again after its chunks were evicted. Written atomically (writeFileAtomic);
 * read with a size bound, so a file grown by hand cannot make the daemon read gigabytes.
 */
export class ProfileStore {
  private constructor(readonly dir: string) {}

  static async open(cacheDir: string): Promise<ProfileStore> {
    const dir = join(cacheDir, 'profiles');
    await mkdir(dir, { recursive: true, mode: 0o700 });
    return new ProfileStore(dir);
  }

  pathOf(image: Digest): string {
    return join(this.dir, `${digestAlgorithm(image)}-${digestHex(image)}.json`);
  }

  /** The stored bytes, undefined when there is none; TooLargeError above `maxBytes`. */
  async load(image: Digest, maxBytes: number): Promise<Buffer | undefined> {
    const fh = await open(this.pathOf(image), 'r').catch((e: NodeJS.ErrnoException) => {
      if (e.code === 'ENOENT') return undefined;
      throw e;
    });
    if (!fh) return undefined;
    try {
      const { size } = await fh.stat();
      if (size > maxBytes) throw new TooLargeError(`access profile ${this.pathOf(image)} (${size} bytes)`, maxBytes, { digest: image });
      const buf = Buffer.alloc(size);
      const { bytesRead } = await fh.read(buf, 0, size, 0);
      return buf.subarray(0, bytesRead);
    } finally {
      await fh.close();
    }
  }

  async save(image: Digest, bytes: Buffer): Promise<void> {
    await mkdir(this.dir, { recursive: true, mode: 0o700 });
    await writeFileAtomic(this.pathOf(image), bytes);
  }

  /** True when there was one to remove. */
  async remove(image: Digest): Promise<boolean> {
    const p = this.pathOf(image);
    const had = await open(p, 'r').then(
      async (fh) => (await fh.close(), true),
      () => false,
    );
    await rm(p, { force: true });
    return had;
  }
}
