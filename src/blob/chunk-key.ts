import type { Digest } from '../lib/digest.js';
import { digestAlgorithm, digestHex, parseDigest } from '../lib/digest.js';

/**
 * Cache keys for blob data. The chunk size is part of the key so that a cache written with one
 * `--chunk-size` is never misread with another.
 */
export function chunkKey(digest: Digest, chunkSize: number, index: number): string {
  return `${digestAlgorithm(digest)}-${digestHex(digest)}-c${chunkSize}-${index}`;
}

/** Per-blob facts kept beside the chunks: size (so a restart needs no HEAD) and verification. */
export function metaKey(digest: Digest, what: 'size' | 'verified'): string {
  return `${digestAlgorithm(digest)}-${digestHex(digest)}-${what}`;
}

export type ParsedKey =
  | { kind: 'chunk'; digest: Digest; chunkSize: number; index: number }
  | { kind: 'size' | 'verified'; digest: Digest };

export function parseKey(key: string): ParsedKey | undefined {
  const m = /^(sha256|sha512)-([a-f0-9]+)-(?:c(\d+)-(\d+)|(size|verified))$/.exec(key);
  if (!m) return undefined;
  let digest: Digest;
  try {
    digest = parseDigest(`${m[1]}:${m[2]}`);
  } catch {
    return undefined;
  }
  if (m[5]) return { kind: m[5] as 'size' | 'verified', digest };
  return { kind: 'chunk', digest, chunkSize: Number(m[3]), index: Number(m[4]) };
}
