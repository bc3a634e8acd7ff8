import { ManifestError, UnsupportedMediaTypeError } from '../lib/errors.js';
import { type Digest, parseDigest } from '../lib/digest.js';
import { MediaType, isIndexType, isManifestType } from './media-types.js';
import type { Platform } from './platform.js';

export interface Descriptor {
  mediaType: string;
  /** OCI 1.1: the type of an artifact manifest (SOCI indexes, referrers). */
  artifactType?: string | undefined;
  digest: Digest;
  size: number;
  annotations?: Record<string, string> | undefined;
  platform?: Platform | undefined;
}

export interface ImageManifest {
  kind: 'manifest';
  mediaType: string;
  config: Descriptor;
  layers: Descriptor[];
  annotations?: Record<string, string> | undefined;
}

export interface ImageIndex {
  kind: 'index';
  mediaType: string;
  manifests: Descriptor[];
}

/** Refuse absurd manifests before they cost memory: no real image has more layers than this. */
export const MAX_LAYERS = 1000;

type Json = Record<string, unknown>;

function isObject(v: unknown): v is Json {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function stringMap(v: unknown, where: string): Record<string, string> | undefined {
  if (v === undefined || v === null) return undefined;
  if (!isObject(v) || Object.values(v).some((x) => typeof x !== 'string')) throw new ManifestError(`${where} must be an object of strings`);
  return v as Record<string, string>;
}

function parseDescriptor(v: unknown, where: string): Descriptor {
  if (!isObject(v)) throw new ManifestError(`${where} must be an object`);
  const { mediaType, digest, size } = v;
  if (typeof mediaType !== 'string' || mediaType === '') throw new ManifestError(`${where}.mediaType must be a non-empty string`);
  if (typeof digest !== 'string') throw new ManifestError(`${where}.digest must be a string`);
  let d: Digest;
  try {
    d = parseDigest(digest);
  } catch (e) {
    throw new ManifestError(`${where}.digest: ${(e as Error).message}`);
  }
  if (typeof size !== 'number' || !Number.isSafeInteger(size) || size < 0) {
    throw new ManifestError(`${where}.size must be a non-negative integer, got ${JSON.stringify(size)}`);
  }
  let platform: Platform | undefined;
  if (v['platform'] !== undefined) {
    const p = v['platform'];
    if (!isObject(p) || typeof p['os'] !== 'string' || typeof p['architecture'] !== 'string') {
      throw new ManifestError(`${where}.platform needs string os and architecture`);
    }
    platform = { os: p['os'], architecture: p['architecture'], variant: typeof p['variant'] === 'string' ? p['variant'] : undefined };
  }
  const artifactType = typeof v['artifactType'] === 'string' ? v['artifactType'] : undefined;
  return { mediaType, ...(artifactType !== undefined ? { artifactType } : {}), digest: d, size, annotations: stringMap(v['annotations'], `${where}.annotations`), platform };
}

/**
 * Parses a manifest or index body. The media type comes from the body when present, else from
 * the Content-Type header (Docker v2 manifests always carry it; OCI ones should).
 */
export function parseManifestBody(body: Uint8Array, contentType: string | undefined): ImageManifest | ImageIndex {
  let json: unknown;
  try {
    json = JSON.parse(Buffer.from(body).toString('utf8'));
  } catch (e) {
    throw new ManifestError(`manifest is not valid JSON: ${(e as Error).message}`);
  }
  if (!isObject(json)) throw new ManifestError('manifest must be a JSON object');
  const headerType = contentType?.split(';')[0]?.trim();
  const bodyType = typeof json['mediaType'] === 'string' ? json['mediaType'] : undefined;
  if (json['schemaVersion'] === 1 || headerType === MediaType.dockerSchema1 || headerType === MediaType.dockerSchema1Signed) {
    throw new UnsupportedMediaTypeError(bodyType ?? headerType ?? 'schema1', 'manifest (Docker schema 1 is deprecated; re-push the image)');
  }
  if (json['schemaVersion'] !== 2) throw new ManifestError(`manifest schemaVersion must be 2, got ${JSON.stringify(json['schemaVersion'])}`);
  let mediaType = bodyType ?? headerType;
  // An OCI body without mediaType is identified by its shape (image-spec allows omitting it).
  if (!mediaType || mediaType === 'application/json' || mediaType === 'application/octet-stream') {
    mediaType = Array.isArray(json['manifests']) ? MediaType.ociIndex : MediaType.ociManifest;
  }
  if (isIndexType(mediaType)) {
    const list = json['manifests'];
    if (!Array.isArray(list)) throw new ManifestError('index.manifests must be an array');
    if (list.length > MAX_LAYERS * 10) throw new ManifestError(`index has ${list.length} entries; refusing more than ${MAX_LAYERS * 10}`);
    return { kind: 'index', mediaType, manifests: list.map((m, i) => parseDescriptor(m, `manifests[${i}]`)) };
  }
  if (isManifestType(mediaType)) {
    const config = parseDescriptor(json['config'], 'config');
    const layers = json['layers'];
    if (!Array.isArray(layers)) throw new ManifestError('manifest.layers must be an array');
    if (layers.length > MAX_LAYERS) throw new ManifestError(`manifest has ${layers.length} layers; refusing more than ${MAX_LAYERS}`);
    return {
      kind: 'manifest',
      mediaType,
      config,
      layers: layers.map((l, i) => parseDescriptor(l, `layers[${i}]`)),
      annotations: stringMap(json['annotations'], 'annotations'),
    };
  }
  throw new UnsupportedMediaTypeError(mediaType, 'manifest');
}

/** Attestation manifests (buildx) sit in indexes with this annotation; they are not images. */
function isAttestation(d: Descriptor): boolean {
  // An entry with an artifactType (e.g. a SOCI index in a SOCI-enabled image, #14) is not an image either.
  return d.annotations?.['vnd.docker.reference.type'] === 'attestation-manifest' || d.platform?.os === 'unknown' || d.artifactType !== undefined;
}

export function candidatesForPlatform(index: ImageIndex, matches: (p: Platform) => boolean): Descriptor[] {
  return index.manifests.filter((d) => !isAttestation(d) && d.platform !== undefined && matches(d.platform));
}

export function listPlatforms(index: ImageIndex): string[] {
  return index.manifests
    .filter((d) => !isAttestation(d) && d.platform)
    .map((d) => `${d.platform!.os}/${d.platform!.architecture}${d.platform!.variant ? `/${d.platform!.variant}` : ''}`);
}
