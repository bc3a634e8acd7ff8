import { createHash } from 'node:crypto';
import type { BlobReader } from '../../src/lib/blob-reader.js';
import { parseDigest, type Digest } from '../../src/lib/digest.js';
import { NotFoundError } from '../../src/lib/errors.js';

/** An in-memory upstream that counts range requests, for unit tests of the layers above HTTP. */
export class CountingUpstream implements BlobReader {
  readonly blobs = new Map<string, Buffer>();
  readonly requests: { digest: string; offset: number; length: number }[] = [];
  sizeCalls = 0;
  delayMs = 0;
  /** When set, every read fails with this error. */
  failWith: Error | undefined;

  add(data: Buffer): Digest {
    const d = parseDigest(`sha256:${createHash('sha256').update(data).digest('hex')}`);
    this.blobs.set(d, data);
    return d;
  }

  async size(digest: Digest): Promise<number> {
    this.sizeCalls++;
    const b = this.blobs.get(digest);
    if (!b) throw new NotFoundError(`blob ${digest}`, { digest });
    return b.length;
  }

  async readAt(digest: Digest, offset: number, into: Uint8Array): Promise<number> {
    this.requests.push({ digest, offset, length: into.length });
    if (this.delayMs) await new Promise((r) => setTimeout(r, this.delayMs));
    if (this.failWith) throw this.failWith;
    const b = this.blobs.get(digest);
    if (!b) throw new NotFoundError(`blob ${digest}`, { digest });
    const part = b.subarray(offset, offset + into.length);
    into.set(part);
    return part.length;
  }
}
