import type { Digest } from '../lib/digest.js';
import { ManifestError } from '../lib/errors.js';
import { sha256Digest } from '../lib/hash.js';
import { type Descriptor, parseManifestBody } from './manifest.js';
import { MediaType } from './media-types.js';

// awslabs/soci-snapshotter soci/soci_index.go: artifact types, media types, annotations.
export const SOCI_INDEX_V1 = 'application/vnd.amazon.soci.index.v1+json';
export const SOCI_INDEX_V2 = 'application/vnd.amazon.soci.index.v2+json';
export const ZTOC_MEDIA_TYPE = 'application/octet-stream';
export const ANN_LAYER_DIGEST = 'com.amazon.soci.image-layer-digest';
export const ANN_LAYER_MEDIA_TYPE = 'com.amazon.soci.image-layer-mediaType';
export const ANN_SPAN_SIZE = 'com.amazon.soci.span-size';
export const ANN_BUILD_TOOL = 'com.amazon.soci.build-tool-identifier';
export const ANN_IMAGE_MANIFEST_DIGEST = 'com.amazon.soci.image-manifest-digest';
export const ANN_INDEX_DIGEST = 'com.amazon.soci.index-digest';
/** The config of a SOCI index manifest is the empty JSON object (soci_index.go `defaultConfigContent`). */
export const EMPTY_CONFIG = Buffer.from('{}');

/** A zTOC blob as a SOCI index lists it. */
export interface ZtocDescriptor {
  digest: Digest;
  size: number;
  annotations?: Record<string, string> | undefined;
}

export interface SociIndex {
  version: 'v1' | 'v2';
  digest: Digest;
  /** zTOCs by the digest of the layer they describe. */
  ztocs: Map<string, ZtocDescriptor>;
  buildTool: string | undefined;
}

/**
 * A SOCI index manifest (an OCI 1.0 image manifest whose config media type is the artifact type
 * and whose layers are the zTOCs, soci_index.go `MarshalIndex`) → zTOCs by layer digest.
 */
export function parseSociIndex(bytes: Buffer, digest: Digest): SociIndex {
  const m = parseManifestBody(bytes, MediaType.ociManifest);
  if (m.kind !== 'manifest') throw new ManifestError(`SOCI index ${digest} is not an image manifest`, { digest });
  const t = m.config.mediaType;
  if (t !== SOCI_INDEX_V1 && t !== SOCI_INDEX_V2) throw new ManifestError(`SOCI index ${digest} has config type ${t}`, { digest });
  const ztocs = new Map<string, ZtocDescriptor>();
  for (const l of m.layers) {
    const layer = l.annotations?.[ANN_LAYER_DIGEST];
    if (l.mediaType === ZTOC_MEDIA_TYPE && layer) ztocs.set(layer, { digest: l.digest, size: l.size, annotations: l.annotations });
  }
  return { version: t === SOCI_INDEX_V1 ? 'v1' : 'v2', digest, ztocs, buildTool: m.annotations?.[ANN_BUILD_TOOL] };
}

export interface BuiltZtoc {
  layer: Descriptor;
  digest: Digest;
  size: number;
  spanSize: number;
}

/** The SOCI index manifest for zTOCs, as `soci create`/`soci convert` write it. v1 names its subject. */
export function buildSociIndex(version: 'v1' | 'v2', ztocs: BuiltZtoc[], subject: Descriptor | undefined, buildTool: string): { bytes: Buffer; descriptor: Descriptor } {
  const artifactType = version === 'v1' ? SOCI_INDEX_V1 : SOCI_INDEX_V2;
  const manifest: Record<string, unknown> = {
    schemaVersion: 2,
    mediaType: MediaType.ociManifest,
    config: { mediaType: artifactType, digest: sha256Digest(EMPTY_CONFIG), size: EMPTY_CONFIG.length },
    layers: ztocs.map((z) => ({
      mediaType: ZTOC_MEDIA_TYPE,
      digest: z.digest,
      size: z.size,
      annotations: { [ANN_LAYER_MEDIA_TYPE]: z.layer.mediaType, [ANN_LAYER_DIGEST]: z.layer.digest, [ANN_SPAN_SIZE]: String(z.spanSize) },
    })),
    ...(subject ? { subject: { mediaType: subject.mediaType, digest: subject.digest, size: subject.size } } : {}),
    annotations: { [ANN_BUILD_TOOL]: buildTool },
  };
  const bytes = Buffer.from(JSON.stringify(manifest));
  return { bytes, descriptor: { mediaType: MediaType.ociManifest, artifactType, digest: sha256Digest(bytes) as Digest, size: bytes.length } };
}

