import { join, resolve } from 'node:path';
import type { RegfsConfig } from '../config/schema.js';
import { ReadOnlyFilesystem } from '../fs/filesystem.js';
import type { FuseMount } from '../fs/fuse-adapter.js';
import { type KeptMount, openKeptMount, retirePredecessor } from '../fs/kept-mount.js';
import type { FsNode } from '../fs/node.js';
import { RegfsError } from '../lib/errors.js';
import type { Logger } from '../lib/logger.js';
import { type Platform, type Registry, hostPlatform, parsePlatform } from '../registry/index.js';
import { type DataPath, openDataPath } from './cache-setup.js';
import { mountKeeper } from './kept-mounts.js';
import { createLogger } from './logger.js';
import { type MetricsSink, createMetrics, serveMetrics } from './metrics.js';
import { watchMount } from './mount-watch.js';
import { fuseMountIdAt, loadFuseAdapter, mountIdExists, prepareMountpoint, unmountPath } from './mountpoint.js';
import { setupRegistry } from './registry-setup.js';
import { Scope, type StopReason } from './scope.js';

/** The registry backend of a daemon; `reload` swaps it (SIGHUP) for everything that uses `current`. */
export interface RegistryHolder {
  current(): Registry;
  reload(cfg: RegfsConfig): Promise<void>;
}

/** What a daemon's presentation (the single image of `mount`, the store of `serve`) is built from. */
export interface DaemonContext {
  readonly cfg: RegfsConfig;
  readonly scope: Scope;
  readonly logger: Logger;
  readonly metrics: MetricsSink;
  readonly registry: RegistryHolder;
  readonly data: DataPath;
  readonly platform: Platform;
  /** The absolute mountpoint, checked and empty. */
  readonly mountpoint: string;
}

/** What a daemon mounts, and what it does around the mount. */
export interface Presentation {
  root: FsNode;
  /** Seconds the kernel may cache entries and attributes (default: the adapter's). */
  cacheTtlS?: number;
  /**
   * Runs once the mount answers; resolves with the one-line ready message. Anything it starts
   * (timers, prefetch) it registers on `ctx.scope`: that is released before the unmount.
   */
  mounted(info: { metricsAddress: string | undefined }): Promise<string> | string;
}

export interface DaemonOptions {
  /** The mount path as given (relative paths are resolved). */
  mountpoint: string;
  /** Serve keeps metrics even without `--metrics` (the control socket's `stats` reads them). */
  alwaysMetrics: boolean;
  /** Resolves with a signal name when the daemon should stop. */
  signals: Promise<string>;
  onReady(line: string, info: { mountpoint: string; metrics: string | undefined }): void;
  /**
   * The filesystem went away from outside (`regfs unmount`, `fusermount -u`, `umount -l`): `mount`
   * then ends normally, `serve` fails (so the service manager restarts it).
   */
  unmountedIsError: boolean;
}

export class StoreUnmountedError extends RegfsError {
  constructor(mountpoint: string) {
    super('ERR_UNMOUNTED', `${mountpoint} was unmounted from outside while serving; exiting so that the service manager restarts regfs`);
  }
}

/**
 * The one daemon lifecycle: logger, metrics, registry, data path, the presentation, the FUSE
 * mount and its watch, in that order; released in reverse, once, however the daemon ends (a
 * signal, the mount gone, an error during start-up). `mount` and `serve` differ only in `present`.
 */
export async function runDaemon(cfg: RegfsConfig, opts: DaemonOptions, present: (ctx: DaemonContext) => Promise<Presentation>): Promise<StopReason> {
  const logger = createLogger(cfg.logLevel);
  const scope = new Scope(logger);
  void opts.signals.then((signal) => scope.stop({ kind: 'signal', signal }));
  try {
    const metrics = await createMetrics(opts.alwaysMetrics || cfg.metrics !== undefined);
    const fuseAdapter = await loadFuseAdapter();
    const keeper = await mountKeeper(cfg, logger);
    const sessions = join(cfg.cacheDir, 'sessions');
    // A kept mount may be live at the mountpoint already: openKeptMount checks it when it mounts
    // afresh. A regfs still serving it hands over first (it owns the cache dir until it exits).
    const mountpoint = keeper ? resolve(opts.mountpoint) : await prepareMountpoint(opts.mountpoint);
    if (keeper) await retirePredecessor(sessions, mountpoint, logger);
    const registry = await registryHolder(cfg, scope, metrics);
    const data = await scope.use('data path', () => openDataPath(cfg, logger), (d) => d.close());
    const platform = cfg.platform ? parsePlatform(cfg.platform) : hostPlatform();
    const ctx: DaemonContext = { cfg, scope, logger, metrics, registry, data, platform, mountpoint };
    const presentation = await present(ctx);
    if (scope.reason) {
      // Stopped while starting (a signal during a long resolve): no reason to mount at all.
      logger.info({ reason: scope.reason.kind }, 'stopping before the mount');
      return scope.reason;
    }

    let mount: FuseMount | undefined;
    metrics.attach({ reader: () => data.reader.counters, cache: () => data.store.counters, readsInFlight: () => mount?.inFlight ?? 0 });
    let metricsAddress: string | undefined;
    if (cfg.metrics) {
      const m = await scope.use('metrics endpoint', () => serveMetrics(metrics, cfg.metrics!, () => mount !== undefined), (m) => m.close());
      metricsAddress = m.address;
    }
    const fs = new ReadOnlyFilesystem(presentation.root, { onRead: (_n, ms) => metrics.observeRead(ms / 1000) });
    const mountOpts = {
      // The kernel waits for our answer; give the registry its whole budget, then say EIO.
      readDeadlineMs: cfg.retryBudget + 5_000,
      allowOther: cfg.allowOther,
      logger,
      ...(presentation.cacheTtlS !== undefined ? { cacheTtlS: presentation.cacheTtlS } : {}),
    };
    let kept: KeptMount | undefined;
    if (keeper) {
      const prepare = async (): Promise<void> => void (await prepareMountpoint(opts.mountpoint));
      kept = await openKeptMount(fs, mountpoint, { cacheTtlS: 3600, ...mountOpts, keeper, stateDir: sessions, prepare });
      mount = kept;
    } else {
      mount = await fuseAdapter.mountFuse(fs, mountpoint, mountOpts);
    }
    const m = mount;
    const mountId = await fuseMountIdAt(mountpoint);
    scope.defer('mount', async () => {
      // SIGUSR2 with a kept mount: the next process takes the session over; nothing is unmounted.
      if (kept && scope.reason?.kind === 'signal' && scope.reason.signal === 'SIGUSR2') {
        await kept.handOver();
        logger.info({ mountpoint }, 'handed the mount over to the next process');
        return;
      }
      m.abortReads();
      // Only our own mount: after an unmount from outside, another one may sit on the path now.
      if (mountId !== undefined && !(await mountIdExists(mountId))) return;
      const how = await unmountPath(mountpoint);
      await m.unmount();
      logger.info({ mountpoint, how }, 'unmounted');
    });
    if (mountId !== undefined) {
      const watch = watchMount(mountId, () => scope.stop({ kind: 'unmounted', mountpoint }));
      scope.defer('mount watch', watch.stop);
    } else {
      logger.warn({ mountpoint }, 'the mount is not in /proc/self/mountinfo; an unmount from outside will not stop the daemon');
    }
    opts.onReady(await presentation.mounted({ metricsAddress }), { mountpoint, metrics: metricsAddress });

    const reason = await scope.stopped;
    if (reason.kind === 'unmounted') {
      if (opts.unmountedIsError) {
        logger.error({ mountpoint }, 'unmounted from outside; exiting with an error');
        throw new StoreUnmountedError(mountpoint);
      }
      logger.info({ mountpoint }, 'unmounted from outside; exiting');
    } else if (reason.kind === 'signal') {
      logger.info({ signal: reason.signal }, 'stopping');
    } else {
      throw reason.error;
    }
    return reason;
  } finally {
    await scope.close();
    logger.flush();
  }
}

/** Registry settings can change on SIGHUP: users go through the holder, not a fixed client. */
async function registryHolder(cfg: RegfsConfig, scope: Scope, metrics: MetricsSink): Promise<RegistryHolder> {
  let registry = await setupRegistry(cfg, scope.logger, metrics.observer);
  scope.defer('registry', () => registry.close());
  return {
    current: () => registry,
    reload: async (next) => {
      const old = registry;
      registry = await setupRegistry(next, scope.logger, metrics.observer);
      await old.close();
    },
  };
}
