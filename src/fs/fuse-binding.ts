import type FuseNative from 'fuse-native';
import { requireNative } from '../lib/native.js';

/**
 * fuse-native's own JS API over regfs's byte-exact build of its C (scripts/patch-fuse-native.mjs,
 * built by `npm run build:native`): paths, names, link targets and xattr names cross as byte
 * names (src/lib/byte-name.ts) in both directions, xattr values as Buffers, and times before
 * 1970 stay negative. The stock fuse-native package decodes every name as UTF-8 and must not be
 * loaded instead.
 */
export type Fuse = FuseNative;
export const Fuse: typeof FuseNative = requireNative<typeof FuseNative>('fuse-native.cjs');
