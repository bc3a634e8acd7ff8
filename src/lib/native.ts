import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

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
  cached ??= requireNative<NativeAddon>('regfs_native.node');
  return cached;
}

/** An addon target of native/binding.gyp by name (each is its own .node file). */
export function loadAddon<T>(target: string): T {
  return requireNative<T>(`${target}.node`);
}

/**
 * Loads a file that `npm run build:native` puts in native/build/Release/ (an addon, or the
 * patched fuse-native JS next to its binary).
 */
export function requireNative<T>(file: string): T {
  const require = createRequire(import.meta.url);
  // dist/lib/ in a build, dist-test/src/lib/ in the tests: look up from here.
  const candidates = [`../../native/build/Release/${file}`, `../../../native/build/Release/${file}`];
  let last: unknown;
  for (const c of candidates) {
    try {
      return require(c) as T;
    } catch (e) {
      last = e;
      // Only "this candidate is not there" tries the next one; a load error is the answer.
      if ((e as NodeJS.ErrnoException).code !== 'MODULE_NOT_FOUND' || !(e as Error).message.split('\n', 1)[0]!.includes(file)) break;
    }
  }
  throw new Error(`cannot load native/build/Release/${file}: ${(last as Error).message.split('\n')[0]} (build it with: npm run build:native)`);
}

/** The path of a file `npm run build:native` built (an executable such as regfs-fd-holder). */
export function nativeFile(file: string): string {
  // dist/lib/ in a build, dist-test/src/lib/ in the tests: look up from here.
  for (const rel of [`../../native/build/Release/${file}`, `../../../native/build/Release/${file}`]) {
    const p = fileURLToPath(new URL(rel, import.meta.url));
    if (existsSync(p)) return p;
  }
  throw new Error(`native/build/Release/${file} is missing (build it with: npm run build:native)`);
}

