import type { RegfsConfig } from '../config/schema.js';
import { InodeAllocator } from '../fs/node.js';
import type { Layer } from '../image/layer.js';
import { assembleImage } from './image-assembly.js';
import { TOC_DIGEST_ANNOTATION } from '../image/estargz.js';
import { ReadOnlyFilesystem } from '../fs/filesystem.js';
import type { FuseMount } from '../fs/fuse-adapter.js';
import { withDeadline } from '../lib/abort.js';
import type { Digest } from '../lib/digest.js';
import type { Logger } from '../lib/logger.js';
import { formatSize } from '../lib/size.js';
import { type ResolvedImage, createBlobFetcher, hostPlatform, parsePlatform, parseReference, resolveImage } from '../registry/index.js';
import type { ChunkReader } from '../blob/chunk-reader.js';
import { openDataPath } from './cache-setup.js';
import { createLogger } from './logger.js';
import { createMetrics, serveMetrics } from './metrics.js';
import { loadFuseAdapter, prepareMountpoint, unmountPath } from './mountpoint.js';
import { setupRegistry } from './registry-setup.js';

export interface MountHooks {
  /** Called once the mount answers; `line` is the one-line ready message. */
  onReady(line: string, info: { mountpoint: string; metrics: string | undefined }): void;
  /** Resolves when the mount should stop (signal); the daemon unmounts then. */
  stopped: Promise<string>;
  /** Progress of long work (layer indexing), for a terminal. */
  onProgress?: (text: string) => void;
}


/** `regfs mount`: resolve, mount, serve until a signal, unmount. The composition root of a mount. */
export async function runMount(cfg: RegfsConfig, refText: string, mountpointArg: string, hooks: MountHooks): Promise<void> {
  const logger = createLogger(cfg.logLevel);
  const metrics = await createMetrics(cfg.metrics !== undefined);
  const cleanups: (() => Promise<void>)[] = [];
  try {
    const ref = parseReference(refText);
    const fuseAdapter = await loadFuseAdapter();
    const mountpoint = await prepareMountpoint(mountpointArg);
    const registry = await setupRegistry(cfg, logger, metrics.observer);
    cleanups.push(() => registry.close());
    const data = await openDataPath(cfg, logger);
    cleanups.push(data.close);
    const { store, reader } = data;

    const platform = cfg.platform ? parsePlatform(cfg.platform) : hostPlatform();
    const img = await resolveImage(registry.client, ref, platform, withDeadline(undefined, cfg.retryBudget * 2), { index: cfg.index, http: registry.http });
    if (img.soci) {
      const missing = !img.soci.index && cfg.index === 'soci';
      logger[missing ? 'warn' : 'info']({ found: img.soci.found, index: img.soci.index?.digest, ztocs: img.soci.index?.ztocs.size, err: img.soci.error }, missing ? 'no SOCI index for this image; layers get a local pass' : 'SOCI index discovery');
    }
    const fetcher = createBlobFetcher(registry.client, { endpoint: ref.endpoint, repository: ref.repository });
    const blobs = [img.manifest.config, ...img.manifest.layers];
    const inodes = new InodeAllocator();
    const { root, layers } = assembleImage(img, fetcher, {
      ...data,
      inodes,
      logger,
      metrics,
      onProgress: hooks.onProgress,
    }, 1);
    const fs = new ReadOnlyFilesystem(root, { onRead: (_n, ms) => metrics.observeRead(ms / 1000) });

    let mount: FuseMount | undefined;
    metrics.attach({ reader: () => reader.counters, cache: () => store.counters, readsInFlight: () => mount?.inFlight ?? 0 });
    let metricsAddr: string | undefined;
    if (cfg.metrics) {
      const m = await serveMetrics(metrics, cfg.metrics, () => mount !== undefined);
      metricsAddr = m.address;
      cleanups.push(m.close);
    }
    mount = await fuseAdapter.mountFuse(fs, mountpoint, {
      // The kernel waits for our answer; give the registry its whole budget, then say EIO.
      readDeadlineMs: cfg.retryBudget + 5_000,
      allowOther: cfg.allowOther,
      logger,
    });
    const m = mount;
    cleanups.push(async () => {
      m.abortReads();
      const how = await unmountPath(mountpoint).catch((e: Error) => {
        logger.warn({ err: e.message }, 'unmount failed');
        return 'failed';
      });
      await m.unmount();
      logger.info({ mountpoint, how }, 'unmounted');
    });
    const total = blobs.reduce((n, b) => n + b.size, 0);
    logger.info({ ref: ref.canonical, manifest: img.manifestDigest, mountpoint, layers: img.manifest.layers.length }, 'mounted');
    hooks.onReady(`regfs: mounted ${ref.canonical} (${img.manifestDigest}, ${img.manifest.layers.length} layers, ${formatSize(total)}) at ${mountpoint}${metricsAddr ? `; metrics at http://${metricsAddr.replace(/^unix:/, '')}/metrics` : ''}`, {
      mountpoint,
      metrics: metricsAddr,
    });
    if (cfg.prefetch === 'all') void prefetchAll(reader, img, cfg.prefetchRate, logger);
    else void prefetchLandmarks(reader, layers, logger);
    const why = await hooks.stopped;
    logger.info({ signal: why }, 'stopping');
  } finally {
    for (const c of cleanups.reverse()) await c().catch((e: Error) => logger.warn({ err: e.message }, 'cleanup failed'));
    logger.flush();
  }
}

/** `--prefetch all`: every layer into the cache in the background, at most `rate` bytes/s (0 = no cap). */
async function prefetchAll(reader: ChunkReader, img: ResolvedImage, rate: number, logger: Logger): Promise<void> {
  const step = 8 << 20;
  const started = Date.now();
  let done = 0;
  for (const layer of img.manifest.layers) {
    for (let off = 0; off < layer.size; off += step) {
      const len = Math.min(step, layer.size - off);
      try {
        await reader.prefetch(layer.digest as Digest, off, len, layer.size);
      } catch (e) {
        logger.warn({ digest: layer.digest, err: (e as Error).message }, 'prefetch failed; reads will fetch on demand');
        break;
      }
      done += len;
      if (rate > 0) {
        const ahead = done / rate - (Date.now() - started) / 1000;
        if (ahead > 0) await new Promise((r) => setTimeout(r, ahead * 1000));
      }
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
