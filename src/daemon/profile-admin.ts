import type { RegfsConfig } from '../config/schema.js';
import { ProfileStore } from '../cache/profile-store.js';
import { ConfigError } from '../lib/errors.js';
import { type ResolvedImage, type RepoLocator, hostPlatform, parsePlatform, parseReference, resolveImage } from '../registry/index.js';
import type { Registry } from '../registry/index.js';
import { pushReferrerArtifact } from '../registry/referrer-artifact.js';
import { PROFILE_LIMITS, PROFILE_MEDIA_TYPE, type Profile, decodeProfile } from '../view/profile-format.js';
import { createLogger } from './logger.js';
import { setupRegistry } from './registry-setup.js';

/**
 * `regfs profile show|clear|push`: the access profile of one image, found by resolving the
 * reference to its manifest digest. Needs the registry (a tag names a digest only there) but not
 * the chunk cache, so it works while a daemon holds the cache dir.
 */
async function withImage<T>(cfg: RegfsConfig, refText: string, fn: (img: ResolvedImage, store: ProfileStore, registry: Registry, repo: RepoLocator) => Promise<T>): Promise<T> {
  const logger = createLogger(cfg.logLevel);
  const registry = await setupRegistry(cfg, logger);
  try {
    const ref = parseReference(refText);
    const platform = cfg.platform ? parsePlatform(cfg.platform) : hostPlatform();
    const img = await resolveImage(registry.client, ref, platform, AbortSignal.timeout(cfg.retryBudget * 2), { index: 'none' });
    return await fn(img, await ProfileStore.open(cfg.cacheDir), registry, { endpoint: ref.endpoint, repository: ref.repository });
  } finally {
    await registry.close();
    logger.flush();
  }
}

function expectation(img: ResolvedImage): { image: ResolvedImage['manifestDigest']; layers: Map<string, number> } {
  return { image: img.manifestDigest, layers: new Map(img.manifest.layers.map((l) => [l.digest, l.size])) };
}

export interface ShownProfile {
  reference: string;
  image: string;
  path: string;
  profile: Profile | undefined;
}

/** The image's local profile, checked against the image (a bad one throws ProfileError). */
export function showProfile(cfg: RegfsConfig, refText: string): Promise<ShownProfile> {
  return withImage(cfg, refText, async (img, store) => {
    const bytes = await store.load(img.manifestDigest, PROFILE_LIMITS.bytes);
    return { reference: img.reference.canonical, image: img.manifestDigest, path: store.pathOf(img.manifestDigest), profile: bytes && decodeProfile(bytes, expectation(img)) };
  });
}

export function clearProfile(cfg: RegfsConfig, refText: string): Promise<{ image: string; removed: boolean }> {
  return withImage(cfg, refText, async (img, store) => ({ image: img.manifestDigest, removed: await store.remove(img.manifestDigest) }));
}

/** Pushes the local profile as a referrer of the image manifest (artifact type = profile media type). */
export function pushProfile(cfg: RegfsConfig, refText: string): Promise<{ image: string; manifest: string; via: 'api' | 'tag' }> {
  return withImage(cfg, refText, async (img, store, registry, repo) => {
    const bytes = await store.load(img.manifestDigest, PROFILE_LIMITS.bytes);
    if (!bytes) throw new ConfigError(`no access profile recorded for ${refText} (${img.manifestDigest}); mount it once (regfs mount ${refText} DIR) and read what it needs first`);
    // Never publish what we would not replay ourselves.
    decodeProfile(bytes, expectation(img));
    const subject = { mediaType: img.manifestMediaType, digest: img.manifestDigest, size: img.manifestBytes.length };
    const r = await pushReferrerArtifact(registry, repo, subject, PROFILE_MEDIA_TYPE, bytes, AbortSignal.timeout(Math.max(60_000, cfg.retryBudget * 4)));
    return { image: img.manifestDigest, ...r };
  });
}
