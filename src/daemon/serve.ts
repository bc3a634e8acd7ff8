import { mkdir } from 'node:fs/promises';
import type { RegfsConfig } from '../config/schema.js';
import { ReadOnlyFilesystem } from '../fs/filesystem.js';
import type { FuseMount } from '../fs/fuse-adapter.js';
import { InodeAllocator } from '../fs/node.js';
import { ConfigError } from '../lib/errors.js';
import { formatSize } from '../lib/size.js';
import { type Registry, createBlobFetcher, hostPlatform, parsePlatform, resolveImage } from '../registry/index.js';
import { openDataPath } from './cache-setup.js';
import { serveControl } from './control.js';
import { ImageRecords } from '../view/image-records.js';
import { ImageStore } from '../view/image-store.js';
import { createLogger } from './logger.js';
import { createMetrics, serveMetrics } from './metrics.js';
import { loadFuseAdapter, prepareMountpoint, unmountPath } from './mountpoint.js';
import { mountLayerStore } from './layer-store-mount.js';
import { setupRegistry } from './registry-setup.js';
import { SdNotifier } from './sd-notify.js';

export interface ServeHooks {
  /** Resolves with the signal name when the service should stop. */
  stopped: Promise<string>;
  /** Registers what SIGHUP runs: registry settings are reloaded from `reloadConfig()`. */
  onReload(handler: () => Promise<void>): void;
  reloadConfig(): Promise<RegfsConfig>;
  onReady(line: string): void;
}

/** `regfs serve`: one store mount, one cache, many images, a control socket, systemd integration. */
export async function runServe(cfg: RegfsConfig, hooks: ServeHooks): Promise<void> {
  if (!cfg.store) throw new ConfigError('serve needs `store` (the mount path of the image store) in the config or --store');
  const logger = createLogger(cfg.logLevel);
  // The control socket's `stats` reads the metrics, so serve always keeps them.
  const metrics = await createMetrics(true);
  const notify = new SdNotifier(cfg.notifySocket, logger);
  const cleanups: (() => Promise<void>)[] = [];
  try {
    const fuseAdapter = await loadFuseAdapter();
    await mkdir(cfg.store, { recursive: true });
    const mountpoint = await prepareMountpoint(cfg.store);
    // Registry settings can change on SIGHUP: fetchers go through this holder, not a fixed client.
    let registry: Registry = await setupRegistry(cfg, logger, metrics.observer);
    cleanups.push(() => registry.close());
    const client = {
      readAt: (...a: Parameters<Registry['client']['readAt']>) => registry.client.readAt(...a),
      blobSize: (...a: Parameters<Registry['client']['blobSize']>) => registry.client.blobSize(...a),
    };
    const data = await openDataPath(cfg, logger);
    cleanups.push(data.close);
    const { store, reader } = data;
    const platform = cfg.platform ? parsePlatform(cfg.platform) : hostPlatform();
    const inodes = new InodeAllocator();
    const images = new ImageStore({
      ...data,
      inodes,
      logger,
      log: logger,
      metrics,
      records: await ImageRecords.open(cfg.cacheDir),
      resolve: (ref) => resolveImage(registry.client, ref, platform),
      source: (ref) => createBlobFetcher(client, { endpoint: ref.endpoint, repository: ref.repository }),
    });
    const restored = await images.restore();
    const fs = new ReadOnlyFilesystem(images.root, { onRead: (_n, ms) => metrics.observeRead(ms / 1000) });

    let mount: FuseMount | undefined;
    metrics.attach({ reader: () => reader.counters, cache: () => store.counters, readsInFlight: () => mount?.inFlight ?? 0 });
    if (cfg.metrics) cleanups.push((await serveMetrics(metrics, cfg.metrics, () => mount !== undefined)).close);
    const prefetch = async (canonical: string): Promise<number> => {
      const s = images.list().find((i) => i.ref.canonical === canonical);
      if (!s) return 0;
      let bytes = 0;
      for (const l of s.img.manifest.layers) {
        await reader.prefetch(l.digest, 0, l.size, l.size);
        bytes += l.size;
      }
      return bytes;
    };
    const layerStore = cfg.layerStore
      ? await mountLayerStore(cfg.layerStore, { images, inodes, logger, metrics, readDeadlineMs: cfg.retryBudget + 5_000, allowOther: cfg.allowOther })
      : undefined;
    if (layerStore) cleanups.push(layerStore.close);
    const control = await serveControl(cfg.control!, { store: images, metrics, mountpoint, prefetch, layersInUse: () => layerStore?.store.list() ?? [] });
    cleanups.push(control.close);

    mount = await fuseAdapter.mountFuse(fs, mountpoint, { readDeadlineMs: cfg.retryBudget + 5_000, allowOther: cfg.allowOther, logger, cacheTtlS: 60 });
    const m = mount;
    cleanups.push(async () => {
      m.abortReads();
      await unmountPath(mountpoint).catch((e: Error) => logger.warn({ err: e.message }, 'unmount failed'));
      await m.unmount();
    });
    const status = (): string => `${images.list().length} images, cache ${formatSize(store.size)}, ${formatSize(reader.counters.bytesFetched)} fetched`;
    notify.send(`READY=1\nSTATUS=serving ${mountpoint}: ${status()}`);
    notify.startWatchdog(cfg.watchdogUsec);
    cleanups.push(async () => notify.stop());
    const ticker = setInterval(() => {
      for (const ref of images.sweep(cfg.idleTimeout, (s) => layerStore?.store.inUse(s.ref.canonical) ?? false)) logger.info({ ref }, 'idle image forgotten (its cache stays)');
      notify.send(`STATUS=serving ${mountpoint}: ${status()}`);
    }, Math.min(30_000, Math.max(1000, cfg.idleTimeout / 4)));
    ticker.unref();
    cleanups.push(async () => clearInterval(ticker));
    hooks.onReload(async () => {
      try {
        const next = await hooks.reloadConfig();
        const old = registry;
        registry = await setupRegistry(next, logger, metrics.observer);
        await old.close();
        logger.info({}, 'registry settings reloaded');
      } catch (e) {
        logger.error({ err: (e as Error).message }, 'reload failed; keeping the previous settings');
      }
    });
    logger.info({ mountpoint, restored, control: cfg.control }, 'store mounted');
    hooks.onReady(`regfs: serving the image store at ${mountpoint} (${restored} images restored); control socket ${cfg.control}`);
    const why = await hooks.stopped;
    notify.send('STOPPING=1');
    logger.info({ signal: why }, 'stopping');
  } finally {
    for (const c of cleanups.reverse()) await c().catch((e: Error) => logger.warn({ err: e.message }, 'cleanup failed'));
    logger.flush();
  }
}
