import { loadAddon } from '../../lib/native.js';

/** native/zstd/decode.c: libzstd's streaming decoder, one call at a time. */
export interface NativeZstd {
  create(): unknown;
  /** → [consumed, produced, frameDone]; throws (code ERR_ZSTD) on corrupt input. */
  decompress(h: unknown, input: Uint8Array, inOff: number, inLen: number, output: Uint8Array, outOff: number, outLen: number): [number, number, number];
  /** Forgets the current frame. */
  reset(h: unknown): void;
}

let cached: NativeZstd | undefined;

export function nativeZstd(): NativeZstd {
  cached ??= loadAddon<NativeZstd>('regfs_zstd');
  return cached;
}
