import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { RegfsConfig } from '../config/schema.js';
import { decodeIndex, type LayerIndex } from '../image/index-codec.js';
import { TOC_DIGEST_ANNOTATION } from '../image/estargz.js';
import { layerCompression } from '../image/formats/media-types.js';
import { type LayerDescriptor, openLayer } from '../image/layer.js';
import { ZtocError } from '../image/soci/errors.js';
import { BUILD_TOOL, buildZtoc } from '../image/soci/build.js';
import { DEFAULT_MIN_LAYER_SIZE } from '../image/soci/ztoc.js';
import type { Digest } from '../lib/digest.js';
import { ConfigError, NotFoundError } from '../lib/errors.js';
import { sha256Digest } from '../lib/hash.js';
import type { Logger } from '../lib/logger.js';
import { formatSize } from '../lib/size.js';
import { type ResolvedImage, createBlobFetcher, hostPlatform, parsePlatform, parseReference, referrersTag, resolveImage, soci } from '../registry/index.js';
import type { Registry } from '../registry/index.js';
import { openDataPath } from './cache-setup.js';
import { createLogger } from './logger.js';
import { setupRegistry } from './registry-setup.js';

export interface IndexBuildOptions {
  span: number;
  minLayerSize?: number;
  /** Progress of long work, for a terminal. */
  onProgress?: ((text: string) => void) | undefined;
  /** One line per layer and per artifact: what was built, reused, skipped and why. */
  say: (line: string) => void;
}

interface Built {
  img: ResolvedImage;
  ztocs: { layer: LayerDescriptor; digest: Digest; bytes: Buffer }[];
}

const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
const OCI_INDEX = 'application/vnd.oci.image.index.v1+json';
const OCI_CONFIG = 'application/vnd.oci.image.config.v1+json';
/** regfs's own checkpoint spacing for its cached index; a zTOC's spans are thinned from it. */
const OWN_SPAN = 2 << 20;

/** Opens what building needs (registry, cache, indexes), runs `fn`, closes everything. */
async function withBuild<T>(cfg: RegfsConfig, refText: string, opts: IndexBuildOptions, fn: (b: Built, registry: Registry, logger: Logger) => Promise<T>): Promise<T> {
  const logger = createLogger(cfg.logLevel);
  const registry = await setupRegistry(cfg, logger);
  try {
    const data = await openDataPath(cfg, logger);
    try {
      const ref = parseReference(refText);
      const platform = cfg.platform ? parsePlatform(cfg.platform) : hostPlatform();
      const img = await resolveImage(registry.client, ref, platform, undefined, { index: 'none' });
      const fetcher = createBlobFetcher(registry.client, { endpoint: ref.endpoint, repository: ref.repository });
      const ztocs: Built['ztocs'] = [];
      for (const l of img.manifest.layers) {
        data.routes.route(l.digest, fetcher);
        data.reader.knowSize(l.digest, l.size);
      }
      for (const [n, layer] of img.manifest.layers.entries()) {
        const name = `layer ${n + 1}/${img.manifest.layers.length} ${layer.digest.slice(0, 19)} (${formatSize(layer.size)})`;
        const c = layerCompression(layer.mediaType);
        const fmt = c === 'gzip' || c === 'tar' ? c : undefined;
        const min = opts.minLayerSize ?? DEFAULT_MIN_LAYER_SIZE;
        if (!fmt) {
          opts.say(`${name}: skipped, ${layer.mediaType} has no zTOC form (SOCI indexes gzip and tar layers)`);
          continue;
        }
        if (layer.annotations?.[TOC_DIGEST_ANNOTATION] !== undefined) {
          opts.say(`${name}: skipped, it is eStargz and carries its own TOC`);
          continue;
        }
        if (layer.size < min) {
          opts.say(`${name}: skipped, smaller than ${formatSize(min)} (SOCI's min-layer-size: such a layer is fetched whole faster than lazily)`);
          continue;
        }
        const key = `${layer.digest.replace(':', '-')}.${fmt}`;
        let index = await loadIndex(data.indexes, key, layer.size);
        const reused = index !== undefined;
        if (!index) {
          const l = openLayer(layer, {
            blobs: data.reader,
            indexes: data.indexes,
            spans: data.spans,
            log: logger,
            span: Math.min(OWN_SPAN, opts.span),
            onIndexProgress: (_d, done, total) => opts.onProgress?.(`${name}: indexing ${formatSize(done)} / ${formatSize(total)}`),
          });
          await l.entries();
          index = await loadIndex(data.indexes, key, layer.size);
          if (!index) {
            opts.say(`${name}: skipped, its footer says eStargz (it carries its own TOC)`);
            continue;
          }
        }
        const readBlob = (o: number, into: Uint8Array): Promise<number> => data.reader.readAt(layer.digest, o, into);
        let bytes: Buffer;
        try {
          ({ bytes } = await buildZtoc(index, readBlob, opts.span, (done, total) => opts.onProgress?.(`${name}: span digests ${formatSize(done)} / ${formatSize(total)}`)));
        } catch (e) {
          if (!(e instanceof ZtocError)) throw e;
          opts.say(`${name}: skipped, ${e.message.replace(/^zTOC: /, '')}`);
          continue;
        }
        const digest = sha256Digest(bytes) as Digest;
        ztocs.push({ layer, digest, bytes });
        opts.say(`${name}: zTOC ${digest} (${formatSize(bytes.length)}, ${index.entries.length} entries)${reused ? ', from the index already in the cache' : ''}`);
      }
      if (ztocs.length === 0) throw new ConfigError(`no layer of ${refText} got a zTOC (all skipped; see above)`);
      return await fn({ img, ztocs }, registry, logger);
    } finally {
      await data.close();
    }
  } finally {
    await registry.close();
    logger.flush();
  }
}

async function loadIndex(store: { load(k: string): Promise<Buffer | undefined> }, key: string, size: number): Promise<LayerIndex | undefined> {
  const raw = await store.load(key);
  const ix = raw ? await decodeIndex(raw) : undefined;
  return ix && ix.compressedSize === size ? ix : undefined;
}

function sociIndexFor(b: Built, version: 'v1' | 'v2', span: number): ReturnType<typeof soci.buildSociIndex> {
  const subject = version === 'v1' ? { mediaType: b.img.manifestMediaType, digest: b.img.manifestDigest, size: b.img.manifestBytes.length } : undefined;
  return soci.buildSociIndex(
    version,
    b.ztocs.map((z) => ({ layer: z.layer, digest: z.digest, size: z.bytes.length, spanSize: span })),
    subject,
    BUILD_TOOL,
  );
}

/** `regfs index build`: zTOCs and a SOCI index (v1, naming the image manifest) in an OCI image layout. */
export async function buildIndexLayout(cfg: RegfsConfig, refText: string, outDir: string, opts: IndexBuildOptions): Promise<{ index: Digest; ztocs: number }> {
  return withBuild(cfg, refText, opts, async (b) => {
    const blobs = join(outDir, 'blobs', 'sha256');
    await mkdir(blobs, { recursive: true });
    const put = (bytes: Buffer): Promise<void> => writeFile(join(blobs, sha256Digest(bytes).slice(7)), bytes);
    for (const z of b.ztocs) await put(z.bytes);
    await put(soci.EMPTY_CONFIG);
    // The image manifest and config too, so the layout names its subject; the layers stay in the registry.
    await put(b.img.manifestBytes);
    await put(b.img.configBytes);
    const idx = sociIndexFor(b, 'v1', opts.span);
    await put(idx.bytes);
    await writeFile(join(outDir, 'oci-layout'), '{"imageLayoutVersion":"1.0.0"}');
    const index = { schemaVersion: 2, mediaType: OCI_INDEX, manifests: [{ ...idx.descriptor, annotations: { [soci.ANN_IMAGE_MANIFEST_DIGEST]: b.img.manifestDigest } }] };
    await writeFile(join(outDir, 'index.json'), JSON.stringify(index));
    opts.say(`SOCI index ${idx.descriptor.digest} (v1, subject ${b.img.manifestDigest}) written to ${outDir}`);
    return { index: idx.descriptor.digest, ztocs: b.ztocs.length };
  });
}

export interface PushOptions extends IndexBuildOptions {
  v1: boolean;
  tag: string | undefined;
}

/**
 * `regfs index push`. v2 (default): a SOCI-enabled image as `soci convert` makes it — the image
 * manifest re-pushed with the `com.amazon.soci.index-digest` annotation (OCI media types), and an
 * image index holding it and the SOCI index manifest (artifactType v2, platform, and the
 * `com.amazon.soci.image-manifest-digest` annotation), tagged `--tag`. v1: the SOCI index names
 * the image manifest as its subject; a registry without the referrers API (no `OCI-Subject`
 * answer) gets the referrers tag schema's index updated instead.
 */
export async function pushIndex(cfg: RegfsConfig, refText: string, opts: PushOptions): Promise<{ index: Digest; tag: string | undefined }> {
  const ref = parseReference(refText);
  if (opts.v1 && opts.tag) throw new ConfigError('--tag makes a new SOCI-enabled image (v2); --v1 attaches the index to the image itself, so drop one of them');
  const tag = opts.v1 ? undefined : (opts.tag ?? `${ref.tag ?? 'latest'}-soci`);
  return withBuild(cfg, refText, opts, async (b, registry) => {
    const repo = { endpoint: ref.endpoint, repository: ref.repository };
    const signal = AbortSignal.timeout(Math.max(60_000, cfg.retryBudget * 4));
    const push = registry.pusher;
    for (const z of b.ztocs) {
      const sent = await push.pushBlob(repo, z.digest, z.bytes, signal);
      opts.say(`zTOC ${z.digest}: ${sent ? 'pushed' : 'already in the registry'}`);
    }
    await push.pushBlob(repo, sha256Digest(soci.EMPTY_CONFIG) as Digest, soci.EMPTY_CONFIG, signal);
    const idx = sociIndexFor(b, opts.v1 ? 'v1' : 'v2', opts.span);
    const put = await push.putManifest(repo, idx.descriptor.digest, OCI_MANIFEST, idx.bytes, signal);
    opts.say(`SOCI index ${idx.descriptor.digest} (${opts.v1 ? 'v1' : 'v2'}) pushed`);
    if (opts.v1) {
      if (put.subject === undefined) {
        const t = referrersTag(b.img.manifestDigest);
        const existing = await registry.client.fetchManifest(repo, t, signal).then(
          (f) => JSON.parse(f.bytes.toString('utf8')) as { manifests?: unknown[] },
          (e: Error) => {
            if (e instanceof NotFoundError) return { manifests: [] };
            throw e;
          },
        );
        const others = (existing.manifests ?? []).filter((m) => (m as { digest?: string }).digest !== idx.descriptor.digest);
        const fallback = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: OCI_INDEX, manifests: [...others, idx.descriptor] }));
        await push.putManifest(repo, t, OCI_INDEX, fallback, signal);
        opts.say(`no referrers API (no OCI-Subject answer): listed in the referrers tag ${t}`);
      }
      return { index: idx.descriptor.digest, tag: undefined };
    }
    // v2: annotate the image manifest (soci_convert.go `annotateImages`).
    const manifest = JSON.parse(b.img.manifestBytes.toString('utf8')) as Record<string, unknown> & { config: Record<string, unknown>; annotations?: Record<string, string> };
    manifest['mediaType'] = OCI_MANIFEST;
    manifest.config = { ...manifest.config, mediaType: OCI_CONFIG };
    manifest.annotations = { ...manifest.annotations, [soci.ANN_INDEX_DIGEST]: idx.descriptor.digest };
    const annotated = Buffer.from(JSON.stringify(manifest));
    const m = await push.putManifest(repo, sha256Digest(annotated), OCI_MANIFEST, annotated, signal);
    const cfgJson = b.img.config as { os?: string; architecture?: string; variant?: string };
    const platform = { os: cfgJson.os ?? 'linux', architecture: cfgJson.architecture ?? 'amd64', ...(cfgJson.variant ? { variant: cfgJson.variant } : {}) };
    const imageEntry = { mediaType: OCI_MANIFEST, digest: m.digest, size: annotated.length, annotations: manifest.annotations, platform };
    const sociEntry = { ...idx.descriptor, platform, annotations: { [soci.ANN_IMAGE_MANIFEST_DIGEST]: m.digest } };
    let manifests: unknown[] = [imageEntry, sociEntry];
    if (b.img.indexDigest) {
      // A multi-platform image keeps its other platforms; ours is replaced, an older SOCI index for it too.
      const orig = JSON.parse((await registry.client.fetchManifest(repo, b.img.indexDigest, signal)).bytes.toString('utf8')) as { manifests: { digest: string; artifactType?: string; annotations?: Record<string, string> }[] };
      manifests = [
        ...orig.manifests.map((d) => (d.digest === b.img.manifestDigest ? { ...imageEntry, platform: (d as { platform?: unknown }).platform ?? platform } : d)).filter((d) => !('artifactType' in d && d.artifactType === soci.SOCI_INDEX_V2 && d.annotations?.[soci.ANN_IMAGE_MANIFEST_DIGEST] === b.img.manifestDigest)),
        sociEntry,
      ];
    }
    const index = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: OCI_INDEX, manifests }));
    const pushed = await push.putManifest(repo, tag!, OCI_INDEX, index, signal);
    opts.say(`SOCI-enabled image ${ref.endpoint}/${ref.repository}:${tag} (${pushed.digest}) pushed: image manifest ${m.digest} + SOCI index ${idx.descriptor.digest}`);
    return { index: idx.descriptor.digest, tag };
  });
}

