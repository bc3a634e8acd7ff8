import type { BlobReader } from '../lib/blob-reader.js';
import type { Digest } from '../lib/digest.js';
import { type FileContent, type FsNode, InodeAllocator, bytesContent, makeDir, makeFile } from './node.js';

/** What the mount shows of one image, independent of where it came from. */
export interface ImageDescription {
  manifestBytes: Buffer;
  configBytes: Buffer;
  configDigest: Digest;
  /** Config and layers, each once. */
  blobs: { digest: Digest; size: number }[];
  /** Image creation time (config `created`) for directory mtimes; 0 when unknown. */
  createdMs: number;
}

/** A blob reader that can also fetch ahead (the chunk reader). */
export interface PrefetchingBlobReader extends BlobReader {
  prefetch?(digest: Digest, offset: number, length: number, size: number): Promise<void>;
}

export function blobContent(reader: PrefetchingBlobReader, digest: Digest, size: number): FileContent {
  const content: FileContent = {
    size,
    read: (offset, into, signal) => reader.readAt(digest, offset, into, signal),
  };
  if (reader.prefetch) {
    const prefetch = reader.prefetch.bind(reader);
    content.prefetch = (offset, length) => void prefetch(digest, offset, length, size).catch(() => {});
  }
  return content;
}

/**
 * `<mnt>/manifest.json`, `<mnt>/config.json`, `<mnt>/blobs/<digest>`; listing and stat need no
 * blob data (sizes come from the manifest).
 */
export function buildImageLayout(img: ImageDescription, reader: PrefetchingBlobReader, inodes = new InodeAllocator(), rootIno = 1): FsNode {
  const t = { mtimeMs: img.createdMs };
  const root = makeDir(rootIno, t);
  const blobs = makeDir(inodes.allocate(), t);
  root.children!.set('manifest.json', makeFile(inodes.allocate(), bytesContent(img.manifestBytes), t));
  root.children!.set('config.json', makeFile(inodes.allocate(), bytesContent(img.configBytes), t));
  root.children!.set('blobs', blobs);
  for (const b of img.blobs) {
    if (blobs.children!.has(b.digest)) continue;
    // The config is already in memory, verified: no reason to fetch it again.
    const content = b.digest === img.configDigest ? bytesContent(img.configBytes) : blobContent(reader, b.digest, b.size);
    blobs.children!.set(b.digest, makeFile(inodes.allocate(), content, t));
  }
  root.nlink = 2 + 1;
  return root;
}
