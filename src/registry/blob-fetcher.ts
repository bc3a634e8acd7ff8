import type { BlobReader, RangeFetcher } from '../lib/blob-reader.js';
import type { Digest } from '../lib/digest.js';
import type { RegistryClient, RepoLocator } from './client.js';

/**
 * The registry side of the seam: blobs of one repository as a RangeFetcher. Sizes learnt from
 * manifests are remembered so that `size()` does not need a HEAD for every layer.
 */
export function createBlobFetcher(client: Pick<RegistryClient, 'readAt' | 'blobSize'>, repo: RepoLocator, knownSizes?: ReadonlyMap<string, number>): RangeFetcher {
  const sizes = new Map<string, number>(knownSizes ?? []);
  const reader: BlobReader = {
    async size(digest: Digest, signal?: AbortSignal): Promise<number> {
      const known = sizes.get(digest);
      if (known !== undefined) return known;
      const n = await client.blobSize(repo, digest, signal);
      sizes.set(digest, n);
      return n;
    },
    readAt(digest: Digest, offset: number, into: Uint8Array, signal?: AbortSignal): Promise<number> {
      return client.readAt(repo, digest, offset, into, signal);
    },
  };
  return { ...reader, origin: `${repo.endpoint}/${repo.repository}` };
}
