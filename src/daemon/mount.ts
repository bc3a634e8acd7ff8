import type { RegfsConfig } from '../config/schema.js';
import { InodeAllocator } from '../fs/node.js';
import type { Layer } from '../image/layer.js';
import { assembleImage, warmSociLayers } from '../view/image-assembly.js';
import { TOC_DIGEST_ANNOTATION } from '../image/estargz.js';
import { withDeadline } from '../lib/abort.js';
import { RatePacer } from '../lib/rate-pacer.js';
import type { Digest } from '../lib/digest.js';
import type { Logger } from '../lib/logger.js';
import { formatSize } from '../lib/size.js';
import { type ResolveOptions, type ResolvedImage, createBlobFetcher, parseReference, resolveImage } from '../registry/index.js';
import type { ChunkReader } from '../blob/chunk-reader.js';
import { runDaemon } from './daemon.js';
import { openProfiles } from './profile-session.js';
import type { StopReason } from './scope.js';

export interface MountHooks {
  /** Called once the mount answers; `line` is the one-line ready message. */
  onReady(line: string, info: { mountpoint: string; metrics: string | undefined }): void;
  /** Resolves with a signal name when the mount should stop; the daemon unmounts then. */
  stopped: Promise<string>;
  /** Progress of long work (layer indexing), for a terminal. */
  onProgress?: (text: string) => void;
}

/**
 * `regfs mount`: resolve, mount, serve until a signal or until the mount is taken away, unmount.
 * Resolves (exit 0) in both cases.
 */
export async function runMount(cfg: RegfsConfig, refText: string, mountpointArg: string, hooks: MountHooks): Promise<StopReason> {
  const ref = parseReference(refText);
  return runDaemon(cfg, { mountpoint: mountpointArg, alwaysMetrics: false, signals: hooks.stopped, onReady: hooks.onReady, unmountedIsError: false }, async (ctx) => {
    const { registry, data, logger, metrics } = ctx;
    const client = registry.current().client;
    const repo = { endpoint: ref.endpoint, repository: ref.repository };
    const fetcher = createBlobFetcher(client, repo);
    // zTOCs start arriving beside the config, not after the mount is assembled (#14).
    const onSociIndex: ResolveOptions['onSociIndex'] = ({ index, manifest }) => warmSociLayers(manifest.layers, index.ztocs, fetcher, data);
    const img = await resolveImage(client, ref, ctx.platform, withDeadline(undefined, cfg.retryBudget * 2), { index: cfg.index, onSociIndex });
    if (img.soci) {
      const missing = !img.soci.index && cfg.index === 'soci';
      logger[missing ? 'warn' : 'info']({ found: img.soci.found, index: img.soci.index?.digest, ztocs: img.soci.index?.ztocs.size, err: img.soci.error }, missing ? 'no SOCI index for this image; layers get a local pass' : 'SOCI index discovery');
    }
    const blobs = [img.manifest.config, ...img.manifest.layers];
    const profileCounters = { replaysFinished: 0, replaysIgnored: 0, replayBytes: 0 };
    metrics.attach({ profile: () => profileCounters });
    const profile = (await openProfiles(ctx, profileCounters)).session(img, repo);
    const { root, layers } = assembleImage(img, fetcher, { ...data, inodes: new InodeAllocator(), logger, metrics, onProgress: hooks.onProgress, imageDir: ctx.mountpoint, profile: profile.hooks }, 1);
    // Replay starts before the FUSE mount: the first reads find their bytes on the way.
    ctx.scope.defer('access profile', profile.start());
    return {
      root,
      mounted: ({ metricsAddress }) => {
        const total = blobs.reduce((n, b) => n + b.size, 0);
        logger.info({ ref: ref.canonical, manifest: img.manifestDigest, mountpoint: ctx.mountpoint, layers: img.manifest.layers.length }, 'mounted');
        // Background prefetch stops before the data path closes (released in reverse order).
        const prefetching = new AbortController();
        ctx.scope.defer('prefetch', () => prefetching.abort());
        if (cfg.prefetch === 'all') void prefetchAll(data.reader, img, cfg.prefetchRate, logger, prefetching.signal);
        else void prefetchLandmarks(data.reader, layers, logger);
        return `regfs: mounted ${ref.canonical} (${img.manifestDigest}, ${img.manifest.layers.length} layers, ${formatSize(total)}) at ${ctx.mountpoint}${metricsAddress ? `; metrics at http://${metricsAddress.replace(/^unix:/, '')}/metrics` : ''}`;
      },
    };
  });
}

/** `--prefetch all`: every layer into the cache in the background, at most `rate` bytes/s (0 = no cap). */
async function prefetchAll(reader: ChunkReader, img: ResolvedImage, rate: number, logger: Logger, signal: AbortSignal): Promise<void> {
  const step = 8 << 20;
  const started = Date.now();
  const pacer = new RatePacer(rate);
  let done = 0;
  for (const layer of img.manifest.layers) {
    for (let off = 0; off < layer.size; off += step) {
      if (signal.aborted) return;
      const len = Math.min(step, layer.size - off);
      try {
        await reader.prefetch(layer.digest as Digest, off, len, layer.size);
      } catch (e) {
        logger.warn({ digest: layer.digest, err: (e as Error).message }, 'prefetch failed; reads will fetch on demand');
        break;
      }
      done += len;
      await pacer.after(len, signal);
    }
  }
  logger.info({ bytes: done, seconds: (Date.now() - started) / 1000 }, 'prefetch done');
}

/** eStargz `.prefetch.landmark`: the files before it are what the image needs first; fetch them now. */
async function prefetchLandmarks(reader: ChunkReader, layers: Layer[], logger: Logger): Promise<void> {
  await Promise.all(
    layers
      .filter((l) => l.descriptor.annotations?.[TOC_DIGEST_ANNOTATION] !== undefined)
      .map(async (l) => {
        try {
          const r = await l.prefetchRange?.();
          if (!r || r.end <= r.start) return;
          await reader.prefetch(l.descriptor.digest, r.start, r.end - r.start, l.descriptor.size);
          logger.info({ layer: l.descriptor.digest, bytes: r.end - r.start }, 'prefetched up to the eStargz landmark');
        } catch (e) {
          logger.warn({ layer: l.descriptor.digest, err: (e as Error).message }, 'landmark prefetch failed; reads will fetch on demand');
        }
      }),
  );
}
