import { createRequire } from 'node:module';

/** The N-API zlib addon in native/ (zlib's Z_BLOCK and inflatePrime, which Node's zlib lacks). */
export interface NativeInflate {
  create(): unknown;
  prime(h: unknown, bits: number, value: number): void;
  setDictionary(h: unknown, window: Uint8Array): void;
  /** → [consumed, produced, dataType, status]; status 0 ok, 1 stream end, -3 corrupt, -5 needs input. */
  inflate(h: unknown, input: Uint8Array, inOff: number, inLen: number, output: Uint8Array, outOff: number, outLen: number, stopAtBlock: boolean): [number, number, number, number];
  end(h: unknown): void;
}

let cached: NativeInflate | undefined;

export function nativeInflate(): NativeInflate {
  if (!cached) {
    const require = createRequire(import.meta.url);
    // dist/image/ in a build, dist-test/src/image/ in the tests: look up from here.
    const candidates = ['../../native/build/Release/regfs_native.node', '../../../native/build/Release/regfs_native.node'];
    let last: unknown;
    for (const c of candidates) {
      try {
        cached = require(c) as NativeInflate;
        break;
      } catch (e) {
        last = e;
      }
    }
    if (!cached) throw new Error(`the zlib addon is not built (run: npm run build:native): ${(last as Error).message.split('\n')[0]}`);
  }
  return cached;
}
