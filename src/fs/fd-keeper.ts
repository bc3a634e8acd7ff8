import { sha256Hex } from '../lib/hash.js';

/**
 * Somewhere a /dev/fuse descriptor outlives the process that mounted it (issue #19): systemd's
 * fd store under a unit with FileDescriptorStoreMax=, regfs-fd-holder elsewhere.
 */
export interface FdKeeper {
  /** Keeps copies of `fds` under `name`, replacing what was kept under it. */
  put(name: string, fds: number[]): void;
  /** The descriptors kept under `name` (owned by the caller now), or undefined. */
  get(name: string): number[] | undefined;
  /** Stops keeping them: the mount is going away for good. */
  delete(name: string): void;
}

/**
 * The name a mount's descriptor is kept under: short, stable for the mountpoint, and valid as a
 * systemd FDNAME (at most 255 printable ASCII characters, no ':').
 */
export function fdNameFor(mountpoint: string): string {
  return `regfs-fuse-${sha256Hex(mountpoint).slice(0, 16)}`;
}
