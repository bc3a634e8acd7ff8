import { createHash } from 'node:crypto';
import type { ReadBlob } from '../gzip-reader.js';
import type { LayerIndex } from '../index-codec.js';
import { thinCheckpoints, ztocFromIndex } from './convert.js';
import { spanRange } from './zinfo.js';
import type { Ztoc } from './ztoc.js';
import { encodeZtoc } from './ztoc-codec.js';

export const BUILD_TOOL = 'regfs';

/**
 * A layer's zTOC from our index of it (no second inflation pass): checkpoints thinned to the
 * span size, and each span's compressed bytes digested as SOCI does (zinfo_builder.go
 * `getPerSpanDigests`), reading the blob once more in order (from the chunk cache when the
 * index was just built).
 */
export async function buildZtoc(index: LayerIndex, read: ReadBlob, spanSize: number, onProgress?: (done: number, total: number) => void): Promise<{ ztoc: Ztoc; bytes: Buffer }> {
  const checkpoints = index.format === 'gzip' ? thinCheckpoints(index.checkpoints, spanSize) : [];
  const ranges =
    index.format === 'gzip'
      ? checkpoints.map((_c, i) => spanRange(checkpoints, i, index.compressedSize))
      : Array.from({ length: Math.max(1, Math.ceil(index.compressedSize / spanSize)) }, (_v, i) => ({ start: i * spanSize, end: Math.min(index.compressedSize, (i + 1) * spanSize) }));
  const buf = Buffer.allocUnsafe(4 << 20);
  const spanDigests: string[] = [];
  for (const r of ranges) {
    const h = createHash('sha256');
    for (let at = r.start; at < r.end; ) {
      const n = await read(at, buf.subarray(0, Math.min(buf.length, r.end - at)));
      if (n === 0) throw new RangeError(`layer ends at ${at}, before ${r.end}`);
      h.update(buf.subarray(0, n));
      at += n;
      onProgress?.(at, index.compressedSize);
    }
    spanDigests.push(`sha256:${h.digest('hex')}`);
  }
  const ztoc = ztocFromIndex({ index, checkpoints, spanSize, spanDigests, buildTool: BUILD_TOOL });
  return { ztoc, bytes: encodeZtoc(ztoc) };
}
