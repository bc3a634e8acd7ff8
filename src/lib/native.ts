import { createRequire } from 'node:module';

/** The N-API addon in native/: zlib block-level inflate (zran) and sd_notify. */
export interface NativeAddon {
  create(): unknown;
  prime(h: unknown, bits: number, value: number): void;
  setDictionary(h: unknown, window: Uint8Array): void;
  /** → [consumed, produced, dataType, status]; status 0 ok, 1 stream end, -3 corrupt, -5 needs input. */
  inflate(h: unknown, input: Uint8Array, inOff: number, inLen: number, output: Uint8Array, outOff: number, outLen: number, stopAtBlock: boolean): [number, number, number, number];
  end(h: unknown): void;
  /** One datagram to a unix socket; 0 or -errno. */
  notify(path: string, message: string): number;
}

let cached: NativeAddon | undefined;

export function nativeAddon(): NativeAddon {
  cached ??= loadAddon<NativeAddon>('regfs_native');
  return cached;
}

/** An addon target of native/binding.gyp by name (each is its own .node file). */
export function loadAddon<T>(target: string): T {
  const require = createRequire(import.meta.url);
  // dist/lib/ in a build, dist-test/src/lib/ in the tests: look up from here.
  const candidates = [`../../native/build/Release/${target}.node`, `../../../native/build/Release/${target}.node`];
  let last: unknown;
  for (const c of candidates) {
    try {
      return require(c) as T;
    } catch (e) {
      last = e;
    }
  }
  throw new Error(`the native addon ${target} is not built (run: npm run build:native): ${(last as Error).message.split('\n')[0]}`);
}
