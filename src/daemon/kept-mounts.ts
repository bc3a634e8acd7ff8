import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import type { RegfsConfig } from '../config/schema.js';
import type { FdKeeper } from '../fs/fd-keeper.js';
import { FdHolder } from '../fs/fd-holder.js';
import { inheritedFds, SystemdFdStore } from '../fs/systemd-fd-store.js';
import type { Logger } from '../lib/logger.js';

/**
 * Where a kept mount's /dev/fuse descriptor outlives the daemon (`keepMounts`, #19): systemd's
 * fd store when systemd runs us (the unit's FileDescriptorStoreMax=), regfs-fd-holder otherwise.
 * Undefined when mounts are not kept, or cannot be: regfs then mounts with fuse-native, and says
 * why in one line.
 */
export async function mountKeeper(cfg: RegfsConfig, logger: Logger): Promise<FdKeeper | undefined> {
  if (!cfg.keepMounts) return undefined;
  if (process.getuid?.() !== 0) {
    logger.warn({}, 'keepMounts needs root (regfs mounts and serves the FUSE session itself): mounting with fuse-native; the mount ends with this process');
    return undefined;
  }
  if (cfg.notifySocket) {
    return new SystemdFdStore(cfg.notifySocket, inheritedFds({ listenPid: cfg.listen.pid, listenFds: cfg.listen.fds, listenFdNames: cfg.listen.fdNames }, process.pid));
  }
  await mkdir(cfg.cacheDir, { recursive: true });
  const holder = new FdHolder(join(cfg.cacheDir, 'fd-holder.sock'));
  await holder.ensureRunning();
  return holder;
}
