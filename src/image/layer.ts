import type { PrefetchingBlobReader } from '../lib/blob-reader.js';
import type { Digest } from '../lib/digest.js';
import type { Logger } from '../lib/logger.js';
import { builtinFormats } from './formats/builtin.js';
import type { LayerFormatRegistry } from './formats/registry.js';
import type { SpanCache } from './gzip-reader.js';
import type { TarEntry } from './tar-entry.js';

export interface LayerDescriptor {
  digest: Digest;
  size: number;
  mediaType: string;
  annotations?: Record<string, string> | undefined;
}

/** Where layer indexes persist (the cache dir); never evicted with chunks. */
export interface IndexStore {
  load(key: string): Promise<Buffer | undefined>;
  save(key: string, data: Buffer): Promise<void>;
}

export interface LayerDeps {
  /** With `prefetch`, a local pass keeps several ranges in flight ahead of itself. */
  blobs: PrefetchingBlobReader;
  indexes: IndexStore;
  spans: SpanCache;
  log: Logger;
  /** Output bytes between gzip checkpoints. */
  span?: number;
  /** Largest uncompressed layer accepted (bombs). */
  maxUncompressed?: number;
  /**
   * Bytes derived from layers that are costly to make again (decoded single-frame zstd), kept in
   * the chunk cache: bounded by its size, kept across restarts. Without it they live in `spans`.
   */
  derived?: DerivedStore | undefined;
  onIndexProgress?: (digest: Digest, compressedDone: number, compressedTotal: number) => void;
  onIndexBuilt?: (digest: Digest, format: string, ms: number) => void;
  /** How each opened layer is served: the format's name, or `soci-refused` (#14 metrics). */
  onLayerServed?: (digest: Digest, how: string) => void;
}

/** Opaque keys → bytes (the chunk store's get/put): a miss is undefined, a failed put is dropped. */
export interface DerivedStore {
  get(key: string): Promise<Buffer | undefined>;
  put(key: string, data: Uint8Array): Promise<void>;
}

/** A layer's file list and the bytes of its files, whatever its format. */
export interface Layer {
  readonly descriptor: LayerDescriptor;
  entries(): Promise<TarEntry[]>;
  read(entry: TarEntry, offset: number, into: Uint8Array, signal?: AbortSignal): Promise<number>;
  /** Compressed bytes worth fetching as soon as the mount is ready (eStargz prefetch landmark). */
  prefetchRange?(): Promise<{ start: number; end: number } | undefined>;
}

/**
 * Opens a layer through a format registry (the composition root passes one that has every
 * format it wired, e.g. SOCI with its referrers client; the built-in formats otherwise). Nothing
 * is read until the first `entries()` or `read()`; then the formats are tried in preference order.
 */
export function openLayer(desc: LayerDescriptor, deps: LayerDeps, formats: LayerFormatRegistry = builtinFormats()): Layer {
  return formats.open(desc, deps);
}
