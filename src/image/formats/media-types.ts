/**
 * Layer media types by compression (OCI image-spec media-types.md, and Docker's v2 schema 2
 * names). Formats match on these; a TOC format may still decline a layer of its compression.
 */
export type LayerCompression = 'tar' | 'gzip' | 'zstd';

const BY_TYPE: ReadonlyMap<string, LayerCompression> = new Map([
  ['application/vnd.oci.image.layer.v1.tar', 'tar'],
  ['application/vnd.oci.image.layer.nondistributable.v1.tar', 'tar'],
  ['application/vnd.docker.image.rootfs.diff.tar', 'tar'],
  ['application/vnd.oci.image.layer.v1.tar+gzip', 'gzip'],
  ['application/vnd.oci.image.layer.nondistributable.v1.tar+gzip', 'gzip'],
  ['application/vnd.docker.image.rootfs.diff.tar.gzip', 'gzip'],
  ['application/vnd.docker.image.rootfs.foreign.diff.tar.gzip', 'gzip'],
  ['application/vnd.oci.image.layer.v1.tar+zstd', 'zstd'],
  ['application/vnd.oci.image.layer.nondistributable.v1.tar+zstd', 'zstd'],
] as const);

/** The compression a layer media type names, or undefined for a type regfs does not know. */
export function layerCompression(mediaType: string): LayerCompression | undefined {
  return BY_TYPE.get(mediaType);
}
