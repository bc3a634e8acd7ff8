import { AsyncLocalStorage } from 'node:async_hooks';
import type { Layer } from '../image/layer.js';
import type { ByteName } from '../lib/byte-name.js';
import type { Digest } from '../lib/digest.js';
import { OrderedRanges } from '../lib/ordered-ranges.js';
import type { PrefetchingBlobReader } from './image-layout.js';
import { PROFILE_LIMITS, type Profile } from './profile-format.js';

/** What the image assembly lets a profile session see and wrap (view/image-assembly.ts). */
export interface ProfileHooks {
  /** The reader the image's layers read their blobs through. */
  wrapBlobs(reader: PrefetchingBlobReader): PrefetchingBlobReader;
  /** A layer as the trees use it (file reads pass through `read`). */
  wrapLayer(layer: Layer): Layer;
  /** How a layer is served, once opened (`servedAs` of profile-format.ts). */
  layerServed(digest: Digest, servedAs: string): void;
}

/** The access profile of one image: hooks for its assembly, and a start that returns its stop. */
export interface ProfileSession {
  /** Handed to the image assembly; undefined when profiles are off altogether. */
  readonly hooks: ProfileHooks | undefined;
  /**
   * Starts the recording window and, in the background, the replay; the returned function ends
   * both (saving what was recorded) — at unmount, or when serve forgets the image.
   */
  start(): () => Promise<void>;
}

/**
 * Records a mount's file reads into a profile while `recording`: each `Layer.read` of a file is
 * noted as (layer, path, range), and the blob reads it causes — found through an
 * AsyncLocalStorage context set around the file read, so the index pass, TOC fetches and other
 * mounts' reads are not counted — as (layer blob, compressed range). Reads of bytes already in
 * memory or on disk are recorded too: a profile says what a run needs, not what it fetched.
 */
export class ProfileRecorder {
  private readonly inFileRead = new AsyncLocalStorage<true>();
  private readonly files = new Map<string, { layer: Digest; path: ByteName; ranges: OrderedRanges }>();
  private readonly blobs = new Map<string, OrderedRanges>();
  private readonly served = new Map<string, string>();
  private ranges = 0;
  /** Blob bytes noted (overlaps counted twice: an upper bound of what the profile will ask for). */
  private blobBytes = 0;
  private recording = false;
  private started = false;

  constructor(
    private readonly image: Digest,
    private readonly windowMs: number,
    private readonly onFull: () => void = () => {},
  ) {}

  get active(): boolean {
    return this.recording;
  }

  /** Opens the window (once): reads from now on are recorded. */
  start(): void {
    if (!this.started) this.recording = this.started = true;
  }

  /** Ends the window: later reads are not recorded. */
  stop(): void {
    this.recording = false;
  }

  layerServed(digest: Digest, how: string): void {
    this.served.set(digest, how);
  }

  wrapBlobs(reader: PrefetchingBlobReader): PrefetchingBlobReader {
    const wrapped: PrefetchingBlobReader = {
      size: (d, s) => reader.size(d, s),
      readAt: (d, offset, into, signal) => {
        // Once the window is over this is a plain call: no extra promise on the read path.
        if (!this.recording || !this.inFileRead.getStore()) return reader.readAt(d, offset, into, signal);
        return reader.readAt(d, offset, into, signal).then((n) => {
          if (this.recording) this.noteBlob(d, offset, offset + n);
          return n;
        });
      },
    };
    if (reader.prefetch) wrapped.prefetch = reader.prefetch.bind(reader);
    return wrapped;
  }

  wrapLayer(layer: Layer): Layer {
    const digest = layer.descriptor.digest;
    const read: Layer['read'] = async (entry, offset, into, signal) => {
      if (!this.recording) return layer.read(entry, offset, into, signal);
      const n = await this.inFileRead.run(true, () => layer.read(entry, offset, into, signal));
      if (this.recording) this.noteFile(digest, entry.path, offset, offset + n);
      return n;
    };
    return overrideRead(layer, read);
  }

  /**
   * Runs `fn` so that the blob reads it makes are recorded as a file read's are, without naming a
   * file: a replay that reads files through their layer (served another way than recorded) joins
   * spans the mount's own reads then need, whose blob reads would otherwise go unrecorded.
   */
  attributing<T>(fn: () => Promise<T>): Promise<T> {
    return this.recording ? this.inFileRead.run(true, fn) : fn();
  }

  /** The profile so far; undefined when nothing was read. */
  snapshot(): Profile | undefined {
    if (this.files.size === 0) return undefined;
    return {
      image: this.image,
      recordedAt: new Date().toISOString(),
      windowMs: this.windowMs,
      files: [...this.files.values()].map((f) => ({ layer: f.layer, path: f.path, ranges: f.ranges.ranges() })),
      blobs: [...this.blobs].map(([digest, r]) => ({ digest: digest as Digest, servedAs: this.served.get(digest) ?? 'unknown', ranges: r.ranges() })),
    };
  }

  private noteFile(layer: Digest, path: ByteName, start: number, end: number): void {
    const key = `${layer}\0${path}`;
    let f = this.files.get(key);
    if (!f) {
      if (path.length > PROFILE_LIMITS.pathBytes) return;
      if (this.files.size >= PROFILE_LIMITS.files) return this.stopFull();
      f = { layer, path, ranges: new OrderedRanges(PROFILE_LIMITS.rangesPerEntry) };
      this.files.set(key, f);
    }
    this.count(f.ranges, start, end);
  }

  private noteBlob(digest: Digest, start: number, end: number): void {
    let r = this.blobs.get(digest);
    if (!r) this.blobs.set(digest, (r = new OrderedRanges(PROFILE_LIMITS.rangesPerEntry)));
    this.blobBytes += end - start;
    if (this.blobBytes > PROFILE_LIMITS.replayBytes) return this.stopFull();
    this.count(r, start, end);
  }

  private count(r: OrderedRanges, start: number, end: number): void {
    const before = r.length;
    if (!r.add(start, end)) return this.stopFull();
    this.ranges += r.length - before;
    if (this.ranges >= PROFILE_LIMITS.ranges) this.stopFull();
  }

  private stopFull(): void {
    if (!this.recording) return;
    this.recording = false;
    this.onFull();
  }
}

/** `layer` with another `read`; every other member (whatever the Layer interface grows) is the layer's own. */
export function overrideRead(layer: Layer, read: Layer['read']): Layer {
  return Object.assign(Object.create(layer) as Layer, { read });
}
