import { mkdir } from 'node:fs/promises';
import { ReadOnlyFilesystem } from '../fs/filesystem.js';
import type { InodeAllocator } from '../fs/node.js';
import type { Logger } from '../lib/logger.js';
import type { ImageStore } from '../view/image-store.js';
import { LayerStore } from '../view/layer-store.js';
import type { MetricsSink } from './metrics.js';
import { loadFuseAdapter, prepareMountpoint, unmountPath } from './mountpoint.js';

export interface LayerStoreMountDeps {
  images: ImageStore;
  /** The store mount's allocator: `diff/` and `blob` are the same nodes as in the store. */
  inodes: InodeAllocator;
  logger: Logger;
  metrics: MetricsSink;
  readDeadlineMs: number;
  allowOther: boolean;
}

/**
 * `serve`'s second mount: the podman/CRI-O additional layer store at `path` (view/layer-store.ts).
 * A mount of its own because containers/storage's use/release notes are a create and an rmdir,
 * which the kernel refuses on the read-only store mount before regfs hears of them.
 */
export async function mountLayerStore(path: string, deps: LayerStoreMountDeps): Promise<{ store: LayerStore; close(): Promise<void> }> {
  const store = new LayerStore({
    inodes: deps.inodes,
    open: (ref) => deps.images.open(ref),
    log: deps.logger,
    // containers/storage waits on this lookup while it pulls; a registry that does not answer
    // soon is better left to its own pull.
    resolveDeadlineMs: Math.min(10_000, deps.readDeadlineMs),
  });
  const fuse = await loadFuseAdapter();
  await mkdir(path, { recursive: true });
  const mountpoint = await prepareMountpoint(path);
  const fs = new ReadOnlyFilesystem(store.root, { onRead: (_n, ms) => deps.metrics.observeRead(ms / 1000) });
  const m = await fuse.mountFuse(fs, mountpoint, { readDeadlineMs: deps.readDeadlineMs, allowOther: deps.allowOther, logger: deps.logger, cacheTtlS: 60, notesCreates: true });
  return {
    store,
    close: async () => {
      m.abortReads();
      await unmountPath(mountpoint).catch((e: Error) => deps.logger.warn({ err: e.message }, 'layer store unmount failed'));
      await m.unmount();
    },
  };
}
