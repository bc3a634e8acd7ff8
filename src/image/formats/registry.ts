import { UnsupportedMediaTypeError } from '../../lib/errors.js';
import { once } from '../../lib/single-flight.js';
import { LayerFormatError } from '../errors.js';
import type { Layer, LayerDeps, LayerDescriptor } from '../layer.js';
import { type LayerProbe, layerProbe } from './probe.js';

/**
 * One way of serving a layer. Formats are tried in preference order; each may decline a layer
 * (answer undefined) so the next one tries — pnpm's pick-fetcher dispatch, with the fall-through
 * that eStargz-without-annotation and SOCI-without-zTOC need.
 */
export interface LayerFormat {
  /** Short name for logs: `estargz`, `zstd:chunked`, `index`, … */
  readonly name: string;
  /** Without I/O: could this layer be ours (media type, annotations)? */
  accepts(desc: LayerDescriptor): boolean;
  /**
   * The opened layer, or undefined to decline. A rejection is final for this attempt (the layer
   * reads EIO; the next use tries again): a TOC that fails its digest must not fall through to a
   * full decode.
   */
  open(desc: LayerDescriptor, deps: LayerDeps, probe: LayerProbe): Promise<Layer | undefined>;
}

/**
 * Preference order (higher first): a TOC in the layer itself (eStargz, zstd:chunked) is cheapest;
 * then an external zTOC (SOCI, #14); then an index this cache built earlier; last the local pass
 * that reads the whole layer once.
 */
export const PRIORITY = { toc: 400, ztoc: 300, cachedIndex: 200, localPass: 100 } as const;

export class LayerFormatRegistry {
  private formats: { format: LayerFormat; priority: number }[] = [];

  /** Adds a format; among equal priorities the earlier registration is tried first. */
  register(format: LayerFormat, priority: number): this {
    if (this.formats.some((f) => f.format.name === format.name)) throw new Error(`layer format ${format.name} is registered twice`);
    this.formats = [...this.formats, { format, priority }].sort((a, b) => b.priority - a.priority);
    return this;
  }

  /** Without I/O: would some format try this layer? (The layer store offers only such layers.) */
  accepts(desc: LayerDescriptor): boolean {
    return this.formats.some((f) => f.format.accepts(desc));
  }

  /** Format names in the order they are tried (for tests and `--help`). */
  get order(): string[] {
    return this.formats.map((f) => f.format.name);
  }

  /**
   * The layer, opened lazily: the first `entries()`/`read()` walks the formats once (concurrent
   * callers share the walk). A layer whose bytes are wrong (`LayerFormatError`: a TOC that fails
   * its digest, garbage compression) stays refused with one log line — the blob is content-
   * addressed, so trying again cannot help; any other failure (network) is forgotten and retried.
   */
  open(desc: LayerDescriptor, deps: LayerDeps): Layer {
    let refused: LayerFormatError | undefined;
    const walk = once(async (): Promise<Layer> => {
      const probe = layerProbe(desc, deps);
      for (const { format } of this.formats) {
        if (!format.accepts(desc)) continue;
        let layer: Layer | undefined;
        try {
          layer = await format.open(desc, deps, probe);
        } catch (e) {
          if (e instanceof LayerFormatError) {
            refused = e;
            deps.log.warn({ layer: desc.digest, format: format.name, err: e.message }, 'layer refused: its files read EIO');
          }
          throw e;
        }
        if (layer) {
          deps.onLayerServed?.(desc.digest, format.name);
          return layer;
        }
      }
      throw new UnsupportedMediaTypeError(desc.mediaType, 'layer', { digest: desc.digest });
    });
    const pick = (): Promise<Layer> => (refused ? Promise.reject(refused) : walk());
    return {
      descriptor: desc,
      entries: async () => (await pick()).entries(),
      read: async (entry, offset, into, signal) => (await pick()).read(entry, offset, into, signal),
      prefetchRange: async () => (await pick()).prefetchRange?.(),
    };
  }
}
