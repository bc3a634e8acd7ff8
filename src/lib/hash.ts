import { createHash } from 'node:crypto';

/** Hex SHA-256 of bytes or text (UTF-8). */
export function sha256Hex(data: Uint8Array | string): string {
  return createHash('sha256').update(data).digest('hex');
}

/** The OCI digest string (`sha256:<hex>`) of bytes. Compare with a descriptor's digest. */
export function sha256Digest(data: Uint8Array | string): string {
  return `sha256:${sha256Hex(data)}`;
}
