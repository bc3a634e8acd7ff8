import type { Layer } from '../image/layer.js';
import type { TarEntry } from '../image/tar-entry.js';
import { throwIfAborted } from '../lib/abort.js';
import { displayName } from '../lib/byte-name.js';
import type { Digest } from '../lib/digest.js';
import { RatePacer } from '../lib/rate-pacer.js';
import { Semaphore } from '../lib/semaphore.js';
import { type Profile, ProfileError, type Range } from './profile-format.js';

export interface ReplayDeps {
  /** The image's layers by digest, as opened for the mount; their file reads are not recorded as the mount's own. */
  layers: ReadonlyMap<string, Layer>;
  /** The chunk reader: background fetches into the cache, behind readers that wait. */
  reader: { prefetch(digest: Digest, offset: number, length: number, size: number): Promise<void> };
  /** How each opened layer is served (`servedAs`), known once its `entries()` resolved. */
  servedAs(digest: string): string | undefined;
  /** Bytes per second (0 = no cap): `prefetchRate`. */
  rate: number;
  signal: AbortSignal;
  /** Called once the profile passed its checks, before the first fetch. */
  onChecked?: () => void;
}

export interface ReplayResult {
  /** Bytes asked for: compressed bytes of blob ranges plus uncompressed bytes of file ranges. */
  bytes: number;
  /** Ranges fetched as recorded compressed ranges, no tree walk or decoding needed. */
  blobRanges: number;
  /** Ranges read through the layer (it is served another way than when recorded). */
  fileRanges: number;
  /** Ranges whose fetch failed (the reads will fetch them, or report the error). */
  failed: number;
}

/** A file range is read in pieces of at most this much (a scratch buffer each). */
const PIECE = 4 << 20;
/** File-range reads (which decode) in flight at once; blob ranges are bounded by the chunk reader's slots. */
const FILE_READS = 4;

/**
 * Replays a profile once, then stops: opens the layers it names (the trees the recorded reads
 * will need anyway), checks that every file it names is a regular file of its layer and every
 * range lies within it — else ProfileError and nothing is fetched — and then fetches, in the
 * recorded order, in parallel and at most `rate` bytes/s: a layer served as when recorded gets
 * its recorded compressed ranges straight into the chunk cache; another (a zTOC here, an index
 * there) gets its files' ranges read through the layer, which fetches what this way needs.
 */
export async function replayProfile(p: Profile, deps: ReplayDeps): Promise<ReplayResult> {
  const named = new Set<string>([...p.files.map((f) => f.layer), ...p.blobs.map((b) => b.digest)]);
  const layerOf = (d: string): Layer => {
    const l = deps.layers.get(d);
    if (!l) throw new ProfileError(`${d} is not a layer of this image`, { digest: d });
    return l;
  };
  const entries = new Map<string, TarEntry[]>();
  await Promise.all([...named].map(async (d) => entries.set(d, await layerOf(d).entries())));
  const found = checkFiles(p, entries);
  deps.onChecked?.();

  const blobWise = new Set(p.blobs.filter((b) => deps.servedAs(b.digest) === b.servedAs).map((b) => b.digest));
  const result: ReplayResult = { bytes: 0, blobRanges: 0, fileRanges: 0, failed: 0 };
  const pacer = new RatePacer(deps.rate);
  const reads = new Semaphore(FILE_READS);
  const started: Promise<void>[] = [];
  const start = async (bytes: number, work: () => Promise<void>): Promise<void> => {
    started.push(work().catch(() => void result.failed++));
    result.bytes += bytes;
    await pacer.after(bytes, deps.signal);
  };
  for (const b of p.blobs) {
    if (!blobWise.has(b.digest)) continue;
    const size = layerOf(b.digest).descriptor.size;
    for (const [s, e] of b.ranges) {
      if (deps.signal.aborted) break;
      result.blobRanges++;
      await start(e - s, () => deps.reader.prefetch(b.digest, s, e - s, size));
    }
  }
  for (const [i, f] of p.files.entries()) {
    if (blobWise.has(f.layer)) continue;
    const layer = layerOf(f.layer);
    const entry = found[i]!;
    for (const [s, e] of f.ranges) {
      for (let at = s; at < e && !deps.signal.aborted; at += PIECE) {
        const len = Math.min(PIECE, e - at);
        result.fileRanges++;
        await start(len, async () => {
          const release = await reads.acquire(false).ready;
          try {
            if (!deps.signal.aborted) await layer.read(entry, at, Buffer.allocUnsafe(len), deps.signal);
          } finally {
            release();
          }
        });
      }
    }
  }
  await Promise.all(started);
  // Cut short by the unmount: not a replay that finished.
  throwIfAborted(deps.signal);
  return result;
}

/** Each profile file's tar entry, in profile order; ProfileError when one is gone or too short. */
function checkFiles(p: Profile, entries: ReadonlyMap<string, TarEntry[]>): TarEntry[] {
  const wanted = new Map<string, TarEntry | undefined>(p.files.map((f) => [`${f.layer}\0${f.path}`, undefined]));
  for (const [d, list] of entries) {
    // Later entries win, as in the layer's tree.
    for (const e of list) {
      const key = `${d}\0${e.path}`;
      if (wanted.has(key)) wanted.set(key, e.type === 'file' ? e : undefined);
    }
  }
  return p.files.map((f) => {
    const e = wanted.get(`${f.layer}\0${f.path}`);
    if (!e) throw new ProfileError(`it names ${displayName(f.path)}, which is not a file of layer ${f.layer}`, { digest: f.layer });
    const end = lastEnd(f.ranges);
    if (end > e.size) throw new ProfileError(`it reads ${displayName(f.path)} up to byte ${end}, past its end (${e.size} bytes)`, { digest: f.layer });
    return e;
  });
}

function lastEnd(ranges: readonly Range[]): number {
  return ranges.reduce((m, [, e]) => Math.max(m, e), 0);
}
