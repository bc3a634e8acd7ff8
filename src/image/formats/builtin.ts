import { estargzFormat } from '../estargz.js';
import { zstdChunkedFormat } from '../zstd/zstd-chunked.js';
import { cachedIndexFormat, localPassFormat } from './indexed.js';
import { LayerFormatRegistry, PRIORITY } from './registry.js';

/** The formats regfs serves out of the box, in preference order (`PRIORITY`). */
export function builtinFormats(): LayerFormatRegistry {
  return new LayerFormatRegistry()
    .register(estargzFormat, PRIORITY.toc)
    .register(zstdChunkedFormat, PRIORITY.toc)
    .register(cachedIndexFormat, PRIORITY.cachedIndex)
    .register(localPassFormat, PRIORITY.localPass);
}
