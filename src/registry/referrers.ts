import type { Digest } from '../lib/digest.js';
import { ManifestError, NotFoundError } from '../lib/errors.js';
import type { RegistryClient, RepoLocator } from './client.js';
import { type Descriptor, parseManifestBody } from './manifest.js';
import { MediaType } from './media-types.js';
import { referrersTag } from './push.js';

/**
 * Manifests that name `subject` as theirs (OCI distribution spec "Listing Referrers"), of one
 * artifact type, asked through the registry's mirrors like every lookup (client.fetchReferrers).
 * Registries without the API (docker-registry 2.8) are asked for the referrers tag schema's
 * fallback index instead; neither existing means "none".
 */
export async function listReferrers(client: RegistryClient, repo: RepoLocator, subject: Digest, artifactType: string, signal?: AbortSignal): Promise<{ descriptors: Descriptor[]; via: 'api' | 'tag' | 'none' }> {
  const body = await client.fetchReferrers(repo, subject, artifactType, signal);
  // A registry may ignore the filter (it then omits OCI-Filters-Applied): filter here too.
  if (body) return { descriptors: indexEntries(body).filter((d) => d.artifactType === artifactType), via: 'api' };
  return referrersByTag(client, repo, subject, artifactType, signal);
}

/** The referrers tag schema alone (distribution spec "Referrers Tag Schema"): the `<alg>-<hex>` tag's index. */
export async function referrersByTag(client: RegistryClient, repo: RepoLocator, subject: Digest, artifactType: string, signal?: AbortSignal): Promise<{ descriptors: Descriptor[]; via: 'tag' | 'none' }> {
  try {
    const fallback = await client.fetchManifest(repo, referrersTag(subject), signal, { mirrorNotFoundIsFinal: true });
    return { descriptors: indexEntries(fallback.bytes).filter((d) => d.artifactType === artifactType), via: 'tag' };
  } catch (e) {
    if (e instanceof NotFoundError) return { descriptors: [], via: 'none' };
    throw e;
  }
}

function indexEntries(body: Buffer): Descriptor[] {
  const parsed = parseManifestBody(body, MediaType.ociIndex);
  if (parsed.kind !== 'index') throw new ManifestError('a referrers listing must be an image index');
  return parsed.manifests;
}
