import type { BlobReader } from '../lib/blob-reader.js';
import type { Digest } from '../lib/digest.js';
import { NotFoundError } from '../lib/errors.js';

/**
 * One cache, many repositories: each blob is fetched from a source that is known to hold it
 * (the repository of the image that listed it). Blobs are content-addressed, so any holder will do.
 */
export class RoutingUpstream implements BlobReader {
  private readonly routes = new Map<string, BlobReader>();

  constructor(private readonly fallback?: BlobReader) {}

  route(digest: Digest, source: BlobReader): void {
    if (!this.routes.has(digest)) this.routes.set(digest, source);
  }

  private sourceOf(digest: Digest): BlobReader {
    const s = this.routes.get(digest) ?? this.fallback;
    if (!s) throw new NotFoundError(`no registry source for blob ${digest}`, { digest });
    return s;
  }

  size(digest: Digest, signal?: AbortSignal): Promise<number> {
    return this.sourceOf(digest).size(digest, signal);
  }

  readAt(digest: Digest, offset: number, into: Uint8Array, signal?: AbortSignal): Promise<number> {
    return this.sourceOf(digest).readAt(digest, offset, into, signal);
  }
}
