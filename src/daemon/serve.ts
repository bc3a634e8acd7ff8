import { mkdir } from 'node:fs/promises';
import { resolve } from 'node:path';
import type { RegfsConfig } from '../config/schema.js';
import { regfsMountAt } from '../fs/kept-mount.js';
import { InodeAllocator } from '../fs/node.js';
import { ConfigError } from '../lib/errors.js';
import { formatSize } from '../lib/size.js';
import { type Registry, createBlobFetcher, resolveImage } from '../registry/index.js';
import { ImageRecords } from '../view/image-records.js';
import { ImageStore } from '../view/image-store.js';
import { serveControl } from './control.js';
import { runDaemon } from './daemon.js';
import { openProfiles } from './profile-session.js';
import { mountLayerStore } from './layer-store-mount.js';
import type { StopReason } from './scope.js';
import { SdNotifier } from './sd-notify.js';
import { startSuccessor } from './successor.js';

export interface ServeHooks {
  /** Resolves with the signal name when the service should stop. */
  stopped: Promise<string>;
  /** Registers what SIGHUP runs: registry settings are reloaded from `reloadConfig()`. */
  onReload(handler: () => Promise<void>): void;
  reloadConfig(): Promise<RegfsConfig>;
  onReady(line: string): void;
}

/**
 * `regfs serve`: one store mount, one cache, many images, a control socket, systemd integration.
 * The store unmounted from outside is an error (StoreUnmountedError), so systemd restarts it.
 */
export async function runServe(cfg: RegfsConfig, hooks: ServeHooks): Promise<StopReason> {
  if (!cfg.store) throw new ConfigError('serve needs `store` (the mount path of the image store) in the config or --store');
  // A kept store mount may be live here, waiting for us to serve it: touching it would wait for
  // ourselves (mkdir stats the mount's root).
  if (!(cfg.keepMounts && (await regfsMountAt(resolve(cfg.store))))) await mkdir(cfg.store, { recursive: true });
  return runDaemon(
    cfg,
    { mountpoint: cfg.store, alwaysMetrics: true, signals: hooks.stopped, onReady: (line) => hooks.onReady(line), unmountedIsError: true },
    async (ctx) => {
      const { registry, data, logger, metrics, scope, mountpoint } = ctx;
      const notify = new SdNotifier(cfg.notifySocket, logger);
      const client = {
        readAt: (...a: Parameters<Registry['client']['readAt']>) => registry.current().client.readAt(...a),
        blobSize: (...a: Parameters<Registry['client']['blobSize']>) => registry.current().client.blobSize(...a),
      };
      const inodes = new InodeAllocator();
      const profileCounters = { replaysFinished: 0, replaysIgnored: 0, replayBytes: 0 };
      metrics.attach({ profile: () => profileCounters });
      const profiles = await openProfiles(ctx, profileCounters);
      const images = new ImageStore({
        ...data,
        inodes,
        logger,
        log: logger,
        metrics,
        mountpoint,
        records: await ImageRecords.open(cfg.cacheDir),
        resolve: (ref) => resolveImage(registry.current().client, ref, ctx.platform, undefined, { index: cfg.index }),
        source: (ref) => createBlobFetcher(client, { endpoint: ref.endpoint, repository: ref.repository }),
        profiles: (ref, img) => profiles.session(img, { endpoint: ref.endpoint, repository: ref.repository }),
      });
      scope.defer('access profiles', () => images.stopProfiles());
      const restored = await images.restore();
      const prefetch = async (canonical: string): Promise<number> => {
        const s = images.list().find((i) => i.ref.canonical === canonical);
        if (!s) return 0;
        let bytes = 0;
        for (const l of s.img.manifest.layers) {
          await data.reader.prefetch(l.digest, 0, l.size, l.size);
          bytes += l.size;
        }
        return bytes;
      };
      if (cfg.layerStore && cfg.keepMounts) {
        // The layer store needs create/rmdir (use/release notes) and per-process use counts, which
        // the kept session does not carry over (docs/takeover.md): say so once, at every start.
        logger.warn({ layerStore: cfg.layerStore }, 'keepMounts keeps the store mount only: the layer store is mounted afresh at each start, so containers started from it lose their lower layers at a restart');
      }
      const layerStore = cfg.layerStore
        ? (await scope.use('layer store', () => mountLayerStore(cfg.layerStore!, { images, inodes, logger, metrics, readDeadlineMs: cfg.retryBudget + 5_000, allowOther: cfg.allowOther }), (l) => l.close())).store
        : undefined;
      const layersInUse = (): ReturnType<NonNullable<typeof layerStore>['list']> => layerStore?.list() ?? [];
      await scope.use('control socket', () => serveControl(cfg.control!, { store: images, metrics, mountpoint, prefetch, layersInUse, restart: () => startSuccessor({ keepMounts: cfg.keepMounts, underSystemd: cfg.notifySocket !== undefined }, logger) }), (c) => c.close());
      hooks.onReload(async () => {
        try {
          await registry.reload(await hooks.reloadConfig());
          logger.info({}, 'registry settings reloaded');
        } catch (e) {
          logger.error({ err: (e as Error).message }, 'reload failed; keeping the previous settings');
        }
      });
      return {
        root: images.root,
        cacheTtlS: 60,
        mounted: () => {
          const status = (): string => `${images.list().length} images, cache ${formatSize(data.store.size)}, ${formatSize(data.reader.counters.bytesFetched)} fetched`;
          notify.send(`READY=1\nSTATUS=serving ${mountpoint}: ${status()}`);
          notify.startWatchdog(cfg.watchdogUsec);
          scope.defer('sd_notify', () => {
            notify.send('STOPPING=1');
            notify.stop();
          });
          const ticker = setInterval(() => {
            for (const ref of images.sweep(cfg.idleTimeout, (s) => layerStore?.inUse(s.ref.canonical) ?? false)) logger.info({ ref }, 'idle image forgotten (its cache stays)');
            notify.send(`STATUS=serving ${mountpoint}: ${status()}`);
          }, Math.min(30_000, Math.max(1000, cfg.idleTimeout / 4)));
          ticker.unref();
          scope.defer('idle sweep', () => clearInterval(ticker));
          logger.info({ mountpoint, restored, control: cfg.control }, 'store mounted');
          return `regfs: serving the image store at ${mountpoint} (${restored} images restored); control socket ${cfg.control}`;
        },
      };
    },
  );
}
