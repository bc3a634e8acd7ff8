import type { Digest } from '../lib/digest.js';
import { ManifestError, PlatformNotFoundError } from '../lib/errors.js';
import { parseDigest } from '../lib/digest.js';
import type { RegistryClient, RepoLocator } from './client.js';
import { type Descriptor, type ImageManifest, candidatesForPlatform, listPlatforms, parseManifestBody } from './manifest.js';
import { listReferrers } from './referrers.js';
import { ANN_IMAGE_MANIFEST_DIGEST, ANN_INDEX_DIGEST, SOCI_INDEX_V1, SOCI_INDEX_V2, type SociIndex, parseSociIndex } from './soci-index.js';
import { type Platform, formatPlatform, platformMatches } from './platform.js';
import { type ImageReference, manifestReference } from './reference.js';

export interface ResolvedImage {
  reference: ImageReference;
  /** Digest of the index the tag pointed at, when it was one. */
  indexDigest: Digest | undefined;
  manifestDigest: Digest;
  manifestMediaType: string;
  /** Byte-exact manifest as served (what `<mnt>/manifest.json` holds). */
  manifestBytes: Buffer;
  manifest: ImageManifest;
  configBytes: Buffer;
  /** The config's JSON, for `inspect`; regfs itself reads only the layer list. */
  config: unknown;
  /** What the SOCI index discovery found (#14); absent with `index: none`. */
  soci?: SociDiscovery | undefined;
}

/** `auto`: use a SOCI index when one is found; `soci`: the same, and say loudly when none is; `none`: do not look. */
export type IndexMode = 'auto' | 'soci' | 'none';

export interface SociDiscovery {
  /** Where it was found, or why not. */
  found: 'image-index' | 'manifest-annotation' | 'referrers-api' | 'referrers-tag' | 'none' | 'error';
  index?: SociIndex | undefined;
  error?: string | undefined;
}

export interface ResolveOptions {
  index?: IndexMode | undefined;
  /**
   * Called once a SOCI index for the selected manifest is known, before the config has arrived:
   * the caller can start fetching the zTOCs beside the config instead of after it (#14).
   */
  onSociIndex?: ((found: { index: SociIndex; manifest: ImageManifest }) => void) | undefined;
}

/** Nested indexes are legal but rare; more than this is a loop or abuse. */
const MAX_INDEX_DEPTH = 4;
const MAX_CONFIG_BYTES = 16 << 20;

/** Reference → manifest for the platform → config, each verified against its digest. */
export async function resolveImage(client: RegistryClient, ref: ImageReference, platform: Platform, signal?: AbortSignal, opts: ResolveOptions = {}): Promise<ResolvedImage> {
  const repo = { endpoint: ref.endpoint, repository: ref.repository };
  let fetched = await client.fetchManifest(repo, manifestReference(ref), signal);
  let indexDigest: Digest | undefined;
  /** A v2 SOCI index bundled beside the chosen manifest, asked for together with the manifest. */
  let bundled: Promise<SociDiscovery> | undefined;
  const seen = new Set<string>([fetched.digest]);
  for (let depth = 0; ; depth++) {
    const parsed = parseManifestBody(fetched.bytes, fetched.mediaType);
    if (parsed.kind === 'manifest') {
      const config = parsed.config;
      const manifestDigest = fetched.digest;
      // Discovery runs beside the config fetch (a bundled v2 index already beside the manifest's):
      // on a slow link it adds no round trip of its own.
      const soci = opts.index === 'none' ? undefined : (bundled ?? discoverSoci(client, repo, manifestDigest, parsed, signal)).then((d) => {
        if (d.index) opts.onSociIndex?.({ index: d.index, manifest: parsed });
        return d;
      });
      const configBytes = await client.fetchBlob(repo, config.digest, config.size, MAX_CONFIG_BYTES, signal);
      let configJson: unknown;
      try {
        configJson = JSON.parse(configBytes.toString('utf8'));
      } catch (e) {
        throw new ManifestError(`image config ${config.digest} is not valid JSON: ${(e as Error).message}`, { digest: config.digest });
      }
      return {
        reference: ref,
        indexDigest,
        manifestDigest: fetched.digest,
        manifestMediaType: parsed.mediaType,
        manifestBytes: fetched.bytes,
        manifest: parsed,
        configBytes,
        config: configJson,
        soci: await soci,
      };
    }
    if (depth >= MAX_INDEX_DEPTH) throw new ManifestError(`index nesting deeper than ${MAX_INDEX_DEPTH} levels at ${fetched.digest}`);
    indexDigest ??= fetched.digest;
    const candidates = candidatesForPlatform(parsed, (p) => platformMatches(platform, p));
    const chosen: Descriptor | undefined = candidates[0];
    if (!chosen) throw new PlatformNotFoundError(formatPlatform(platform), listPlatforms(parsed), { digest: fetched.digest });
    if (seen.has(chosen.digest)) throw new ManifestError(`index ${fetched.digest} refers to itself (loop through ${chosen.digest})`, { digest: chosen.digest });
    seen.add(chosen.digest);
    const v2 = opts.index === 'none' ? undefined : parsed.manifests.find((m) => m.artifactType === SOCI_INDEX_V2 && m.annotations?.[ANN_IMAGE_MANIFEST_DIGEST] === chosen.digest);
    bundled = v2 && settled('image-index', fetchSociIndex(client, repo, v2.digest, signal));
    fetched = await client.fetchManifest(repo, chosen.digest, signal);
  }
}

function fetchSociIndex(client: RegistryClient, repo: RepoLocator, digest: Digest, signal?: AbortSignal): Promise<SociIndex> {
  return client.fetchManifest(repo, digest, signal).then((f) => parseSociIndex(f.bytes, digest));
}

/** A discovery step as a report: failures are reported, never thrown (also on abort, so no promise rejects unheard). */
function settled(found: SociDiscovery['found'], index: Promise<SociIndex>): Promise<SociDiscovery> {
  return index.then(
    (i) => ({ found, index: i }),
    (e: Error) => ({ found: 'error', error: e.message }),
  );
}

/**
 * Finds the SOCI index of the selected manifest (#14) when the image index did not bundle one,
 * in the order of the SOCI project's own preference (docs/soci-index-manifest-v2.md): the
 * manifest's annotation naming a v2 index; then a v1 index that refers to the manifest
 * (referrers API, then the referrers tag schema). An image without a usable SOCI index is
 * still an image: the result is a report, never a rejection.
 */
async function discoverSoci(client: RegistryClient, repo: RepoLocator, manifestDigest: Digest, manifest: ImageManifest, signal?: AbortSignal): Promise<SociDiscovery> {
  const named = manifest.annotations?.[ANN_INDEX_DIGEST];
  if (named !== undefined) {
    let digest: Digest;
    try {
      digest = parseDigest(named);
    } catch (e) {
      return { found: 'error', error: (e as Error).message };
    }
    return settled('manifest-annotation', fetchSociIndex(client, repo, digest, signal));
  }
  try {
    // Through the mirrors like the manifest; a host without the API is remembered (client.fetchReferrers).
    const refs = await listReferrers(client, repo, manifestDigest, SOCI_INDEX_V1, signal);
    const pick = refs.descriptors.at(-1);
    if (!pick) return { found: 'none' };
    return { found: refs.via === 'api' ? 'referrers-api' : 'referrers-tag', index: await fetchSociIndex(client, repo, pick.digest, signal) };
  } catch (e) {
    return { found: 'error', error: (e as Error).message };
  }
}
