import type { Digest } from '../lib/digest.js';
import { digestAlgorithm, digestHex } from '../lib/digest.js';

/** The cache key of a blob: its digest in a form that is a safe file name. */
export function blobKey(digest: Digest): string {
  return `${digestAlgorithm(digest)}-${digestHex(digest)}`;
}
