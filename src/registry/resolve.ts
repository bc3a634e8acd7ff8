import type { Digest } from '../lib/digest.js';
import { ManifestError, PlatformNotFoundError } from '../lib/errors.js';
import type { RegistryClient } from './client.js';
import { type Descriptor, type ImageManifest, candidatesForPlatform, listPlatforms, parseManifestBody } from './manifest.js';
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
}

/** Nested indexes are legal but rare; more than this is a loop or abuse. */
const MAX_INDEX_DEPTH = 4;
const MAX_CONFIG_BYTES = 16 << 20;

/** Reference → manifest for the platform → config, each verified against its digest. */
export async function resolveImage(client: RegistryClient, ref: ImageReference, platform: Platform, signal?: AbortSignal): Promise<ResolvedImage> {
  const repo = { endpoint: ref.endpoint, repository: ref.repository };
  let fetched = await client.fetchManifest(repo, manifestReference(ref), signal);
  let indexDigest: Digest | undefined;
  const seen = new Set<string>([fetched.digest]);
  for (let depth = 0; ; depth++) {
    const parsed = parseManifestBody(fetched.bytes, fetched.mediaType);
    if (parsed.kind === 'manifest') {
      const config = parsed.config;
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
      };
    }
    if (depth >= MAX_INDEX_DEPTH) throw new ManifestError(`index nesting deeper than ${MAX_INDEX_DEPTH} levels at ${fetched.digest}`);
    indexDigest ??= fetched.digest;
    const candidates = candidatesForPlatform(parsed, (p) => platformMatches(platform, p));
    const chosen: Descriptor | undefined = candidates[0];
    if (!chosen) throw new PlatformNotFoundError(formatPlatform(platform), listPlatforms(parsed), { digest: fetched.digest });
    if (seen.has(chosen.digest)) throw new ManifestError(`index ${fetched.digest} refers to itself (loop through ${chosen.digest})`, { digest: chosen.digest });
    seen.add(chosen.digest);
    fetched = await client.fetchManifest(repo, chosen.digest, signal);
  }
}
