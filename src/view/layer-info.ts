import { TOC_DIGEST_ANNOTATION } from '../image/estargz.js';
import type { LayerDescriptor } from '../image/layer.js';
import { type Digest, isDigest } from '../lib/digest.js';

/**
 * TOC digest annotations containers/storage reads (pkg/chunked/toc GetTOCDigest): eStargz, and
 * zstd:chunked under the key of current containers/storage and the one of 1.43 (Debian 12's podman).
 */
const TOC_ANNOTATIONS = [TOC_DIGEST_ANNOTATION, 'io.github.containers.zstd-chunked.manifest-checksum', 'io.containers.zstd-chunked.manifest-checksum'];
/** Written by the eStargz converter next to the TOC digest (estargz.StoreUncompressedSizeAnnotation). */
const UNCOMPRESSED_SIZE_ANNOTATION = 'io.containers.estargz.uncompressed-size';

/** containers/storage pkg/archive Compression values (Uncompressed 0, Bzip2 1, Gzip 2, Xz 3, Zstd 4). */
function compressionOf(mediaType: string): number {
  if (/\+gzip$|\.tar\.gzip$/.test(mediaType)) return 2;
  if (/\+zstd$|\.tar\.zstd$/.test(mediaType)) return 4;
  return 0;
}

export function tocDigestOf(layer: LayerDescriptor): Digest | undefined {
  for (const key of TOC_ANNOTATIONS) {
    const v = layer.annotations?.[key];
    if (v !== undefined && isDigest(v)) return v;
  }
  return undefined;
}

function uncompressedSizeOf(layer: LayerDescriptor): number | undefined {
  if (compressionOf(layer.mediaType) === 0) return layer.size;
  const v = layer.annotations?.[UNCOMPRESSED_SIZE_ANNOTATION];
  return v !== undefined && /^\d{1,15}$/.test(v) ? Number(v) : undefined;
}

/**
 * The `info` file of `<store>/<ref>/<key>/`: the JSON containers/storage decodes into its `Layer`
 * (layers.go json tags) before it links `diff` as the layer.
 *
 * Looked up by the layer digest (podman 4.3 / containers/storage 1.43, storage_dest.go
 * tryReusingBlobAsPending): it needs `diff-digest` (the config's diff_id) to compute layer and
 * image IDs, and `compressed-size` as the blob size. Looked up by a TOC digest (current
 * containers/storage): `toc-digest` must equal the key, and the layer is identified by it; the
 * compressed and uncompressed digests are left out as stargz-store does, because nothing checks
 * that the TOC's files hash to them (containers/image reads the diff_id from the
 * `expected-layer-diffid` flag as untrusted). `diff-size` is given when known without reading the
 * layer (plain tar, the eStargz annotation); else -1 ("unknown", allowed with a TOC digest) or
 * left out (old readers treat a missing size as 0).
 */
export function layerInfo(layer: LayerDescriptor, diffId: Digest | undefined, key: 'layer' | 'toc'): Buffer {
  const toc = tocDigestOf(layer);
  const size = uncompressedSizeOf(layer);
  const compression = compressionOf(layer.mediaType);
  const flags = diffId ? { 'expected-layer-diffid': diffId } : undefined;
  const info =
    key === 'toc'
      ? { 'toc-digest': toc, 'compressed-size': layer.size, 'diff-size': size ?? -1, compression: compression || undefined, flags }
      : {
          'compressed-diff-digest': layer.digest,
          'compressed-size': layer.size,
          'diff-digest': diffId,
          'diff-size': size,
          'toc-digest': toc,
          compression: compression || undefined,
          flags,
        };
  return Buffer.from(`${JSON.stringify(info)}\n`);
}
