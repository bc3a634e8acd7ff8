import type { Digest } from '../lib/digest.js';
import { NotFoundError } from '../lib/errors.js';
import { sha256Digest } from '../lib/hash.js';
import type { RegistryClient, RepoLocator } from './client.js';
import { type Descriptor, parseManifestBody } from './manifest.js';
import { MediaType } from './media-types.js';
import { type RegistryPusher, referrersTag } from './push.js';
import { listReferrers } from './referrers.js';

/**
 * One small blob attached to an image manifest as an OCI referrer (image-spec 1.1 "Guidelines for
 * Artifact Usage": `artifactType` set, the empty config, the blob as the one layer, `subject` the
 * image). Used for access profiles (#15); the artifact type tells readers what the blob is.
 */

/** image-spec 1.1 manifest.md "Guidance for an Empty Descriptor". */
const EMPTY_MEDIA_TYPE = 'application/vnd.oci.empty.v1+json';
const EMPTY = Buffer.from('{}');
const CREATED = 'org.opencontainers.image.created';

export interface ArtifactPushResult {
  manifest: Digest;
  /** `api`: the registry indexed the subject itself (OCI-Subject answered); `tag`: we updated the referrers tag. */
  via: 'api' | 'tag';
}

/**
 * Pushes `blob` as the one layer of an artifact manifest naming `subject`. A registry without the
 * referrers API (no `OCI-Subject` answer, e.g. docker-registry 2.8) gets the referrers tag schema's
 * index updated instead (distribution spec "Pushing Manifests with Subject"), where older
 * artifacts of the same type for that subject are replaced: one current profile per image.
 */
export async function pushReferrerArtifact(
  reg: { client: RegistryClient; pusher: RegistryPusher },
  repo: RepoLocator,
  subject: Descriptor,
  artifactType: string,
  blob: Buffer,
  signal: AbortSignal,
): Promise<ArtifactPushResult> {
  const emptyDigest = sha256Digest(EMPTY) as Digest;
  const blobDigest = sha256Digest(blob) as Digest;
  await reg.pusher.pushBlob(repo, emptyDigest, EMPTY, signal);
  await reg.pusher.pushBlob(repo, blobDigest, blob, signal);
  const annotations = { [CREATED]: new Date().toISOString() };
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: MediaType.ociManifest,
      artifactType,
      config: { mediaType: EMPTY_MEDIA_TYPE, digest: emptyDigest, size: EMPTY.length },
      layers: [{ mediaType: artifactType, digest: blobDigest, size: blob.length }],
      subject: { mediaType: subject.mediaType, digest: subject.digest, size: subject.size },
      annotations,
    }),
  );
  const put = await reg.pusher.putManifest(repo, sha256Digest(manifest), MediaType.ociManifest, manifest, signal);
  if (put.subject !== undefined) return { manifest: put.digest, via: 'api' };
  const tag = referrersTag(subject.digest);
  const existing = await reg.client.fetchManifest(repo, tag, signal).then(
    (f) => {
      const parsed = parseManifestBody(f.bytes, MediaType.ociIndex);
      return parsed.kind === 'index' ? parsed.manifests : [];
    },
    (e: Error) => {
      if (e instanceof NotFoundError) return [];
      throw e;
    },
  );
  const entry = { mediaType: MediaType.ociManifest, artifactType, digest: put.digest, size: manifest.length, annotations };
  const index = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: MediaType.ociIndex, manifests: [...existing.filter((d) => d.artifactType !== artifactType), entry] }));
  await reg.pusher.putManifest(repo, tag, MediaType.ociIndex, index, signal);
  return { manifest: put.digest, via: 'tag' };
}

/**
 * The blob of the newest referrer of `subject` with `artifactType` (referrers API, or the
 * referrers tag where there is none), checked against its digest and at most `maxBytes`;
 * undefined when there is none.
 */
export async function fetchReferrerArtifact(
  client: RegistryClient,
  repo: RepoLocator,
  subject: Digest,
  artifactType: string,
  maxBytes: number,
  signal: AbortSignal,
): Promise<{ bytes: Buffer; manifest: Digest } | undefined> {
  // Referrers API, then the tag, both through the mirrors (as SOCI discovery does, resolve.ts).
  const { descriptors } = await listReferrers(client, repo, subject, artifactType, signal);
  if (descriptors.length === 0) return undefined;
  // Newest by its creation annotation (RFC 3339 sorts as text); the listing's order otherwise.
  const newest = descriptors.reduce((a, b) => ((b.annotations?.[CREATED] ?? '') >= (a.annotations?.[CREATED] ?? '') ? b : a));
  const m = await client.fetchManifest(repo, newest.digest, signal);
  const parsed = parseManifestBody(m.bytes, MediaType.ociManifest);
  const layer = parsed.kind === 'manifest' ? parsed.layers.find((l) => l.mediaType === artifactType) : undefined;
  if (!layer) throw new NotFoundError(`referrer ${newest.digest} of ${subject} has no ${artifactType} layer`, { digest: newest.digest });
  return { bytes: await client.fetchBlob(repo, layer.digest, layer.size, maxBytes, signal), manifest: newest.digest };
}
