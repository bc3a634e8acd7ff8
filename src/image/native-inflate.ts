import { type NativeAddon, nativeAddon } from '../lib/native.js';

export type NativeInflate = Pick<NativeAddon, 'create' | 'prime' | 'setDictionary' | 'inflate' | 'end'>;

/** zlib's Z_BLOCK and inflatePrime, which Node's zlib binding does not expose. */
export function nativeInflate(): NativeInflate {
  return nativeAddon();
}
