import { displayName } from '../../lib/byte-name.js';
import type { Digest } from '../../lib/digest.js';
import { sha256Digest } from '../../lib/hash.js';
import { builtinFormats } from '../formats/builtin.js';
import { readEntryBytes } from '../formats/entry-read.js';
import { layerCompression } from '../formats/media-types.js';
import type { LayerFormat } from '../formats/registry.js';
import type { Layer, LayerDeps, LayerDescriptor } from '../layer.js';
import { type TarEntry, normalisePath } from '../tar-entry.js';
import { BLOCK, parseHeader } from '../tar-header.js';
import { type ZtocLayout, layoutFromZtoc } from './convert.js';
import { ZtocError } from './errors.js';
import { readInParts } from './read-in-parts.js';
import { HEAD_BLOCK, SociSpanReader } from './span-reader.js';
import { decodeZtoc } from './ztoc-codec.js';
import { ANN_LAYER_DIGEST } from './ztoc.js';

/** A zTOC blob named by a SOCI index for one layer. */
export interface ZtocRef {
  digest: Digest;
  size: number;
  annotations?: Record<string, string> | undefined;
}

/** zTOCs carry a 32 KiB window per checkpoint: ~1 MB per 100 MB of layer. More than this is abuse. */
const MAX_ZTOC_BYTES = 512 << 20;

/**
 * SOCI zTOCs as a layer format (#14): a gzip or tar layer that the image's SOCI index gives a
 * zTOC for is served from it — the tree from the TOC, reads inflating one verified span each.
 * The zTOC is trusted only after its blob digest, its structure, its sizes and the layer's first
 * tar header agree; otherwise the format declines (one warning) and the next format, the cached
 * index or the local pass, serves the layer. A span that later fails its digest or does not
 * inflate turns the layer over to the local pass for good, again with one warning. No byte that
 * was not checked is served.
 */
export function sociFormat(ztocs: ReadonlyMap<string, ZtocRef>): LayerFormat {
  return {
    name: 'soci',
    accepts: (desc) => ztocs.has(desc.digest) && (layerCompression(desc.mediaType) === 'gzip' || layerCompression(desc.mediaType) === 'tar'),
    async open(desc, deps) {
      const ztoc = ztocs.get(desc.digest)!;
      const format = layerCompression(desc.mediaType) as 'gzip' | 'tar';
      // The first tar header is checked against the TOC once the zTOC is in: its block is asked for now, beside the zTOC.
      void deps.blobs.readAt(desc.digest, 0, Buffer.allocUnsafe(Math.min(HEAD_BLOCK, desc.size))).catch(() => 0);
      try {
        const layout = await loadLayout(desc, format, ztoc, deps);
        const reader = new SociSpanReader(desc.digest, layout, (o, into, s) => deps.blobs.readAt(desc.digest, o, into, s), deps.spans);
        await checkFirstHeader(reader, layout, desc.digest);
        return sociLayer(desc, deps, ztoc, layout, reader);
      } catch (e) {
        if (!(e instanceof ZtocError)) throw e;
        refused(desc, deps, ztoc, e);
        return undefined;
      }
    },
  };
}

function refused(desc: LayerDescriptor, deps: LayerDeps, ztoc: ZtocRef, e: Error): void {
  deps.log.warn({ layer: desc.digest, ztoc: ztoc.digest, err: e.message }, 'SOCI zTOC refused; the layer is served by the local pass');
  deps.onLayerServed?.(desc.digest, 'soci-refused');
}

function sociLayer(desc: LayerDescriptor, deps: LayerDeps, ztoc: ZtocRef, layout: ZtocLayout, reader: SociSpanReader): Layer {
  let fallback: { layer: Layer; byPath: Promise<Map<string, TarEntry>> } | undefined;
  return {
    descriptor: desc,
    entries: async () => layout.entries,
    async read(entry, offset, into, signal) {
      if (!fallback) {
        try {
          return await readEntryBytes(entry, offset, into, reader, signal);
        } catch (e) {
          if (!(e instanceof ZtocError)) throw e;
          if (!fallback) {
            refused(desc, deps, ztoc, e);
            // The layer without its zTOC: the formats below SOCI (cached index, local pass).
            const layer = builtinFormats().open(desc, deps);
            fallback = { layer, byPath: layer.entries().then((list) => new Map(list.map((x) => [x.path, x]))) };
          }
        }
      }
      // The tree already handed out came from the zTOC: read the same member through the local pass.
      const same = (await fallback.byPath).get(entry.path);
      if (!same || same.type !== entry.type) throw new ZtocError(`${JSON.stringify(displayName(entry.path))} is not in the layer`, desc.digest);
      return fallback.layer.read(same, offset, into, signal);
    },
  };
}

async function loadLayout(desc: LayerDescriptor, format: 'gzip' | 'tar', ztoc: ZtocRef, deps: LayerDeps): Promise<ZtocLayout> {
  const claimed = ztoc.annotations?.[ANN_LAYER_DIGEST];
  if (claimed !== undefined && claimed !== desc.digest) throw new ZtocError(`the SOCI index gives it for layer ${claimed}`, desc.digest);
  if (ztoc.size <= 0 || ztoc.size > MAX_ZTOC_BYTES) throw new ZtocError(`zTOC blob of ${ztoc.size} bytes`, desc.digest);
  const blob = Buffer.allocUnsafe(ztoc.size);
  const n = await readInParts((o, into, s) => deps.blobs.readAt(ztoc.digest, o, into, s), 0, blob);
  if (n !== ztoc.size) throw new ZtocError(`zTOC blob ${ztoc.digest} is ${n} bytes, the index says ${ztoc.size}`, desc.digest);
  const got = sha256Digest(blob);
  if (got !== ztoc.digest) throw new ZtocError(`zTOC blob has digest ${got}, the index says ${ztoc.digest}`, desc.digest);
  return layoutFromZtoc(decodeZtoc(blob), { digest: desc.digest, size: desc.size, format });
}

/**
 * The TOC must be this layer's: the first member's tar header, inflated from the first
 * checkpoint (a few KiB), has to name the TOC's first entry with its size and mtime. A TOC taken
 * from another layer fails here, before any of its tree is shown.
 */
async function checkFirstHeader(reader: SociSpanReader, layout: ZtocLayout, digest: string): Promise<void> {
  const first = layout.entries[0];
  if (!first) return;
  if (first.dataOffset > 64 * 1024) throw new ZtocError(`the first TOC entry starts at ${first.dataOffset}`, digest);
  const head = await reader.head(first.dataOffset);
  if (head.length < first.dataOffset) throw new ZtocError('the layer ends before the first TOC entry', digest);
  let h;
  try {
    h = parseHeader(head.subarray(first.dataOffset - BLOCK, first.dataOffset));
  } catch (e) {
    throw new ZtocError(`no tar header before the first TOC entry (${(e as Error).message}): the TOC is not this layer's`, digest);
  }
  // Extended headers (PAX, GNU long names) may override the ustar fields; compare only without them.
  if (first.dataOffset === BLOCK) {
    const sameName = normalisePath(h.name) === first.path;
    const sameSize = first.type !== 'file' || h.size === first.size;
    const sameTime = Math.floor(first.mtimeMs / 1000) === h.mtime;
    if (!sameName || !sameSize || !sameTime) throw new ZtocError(`the layer's first member is ${JSON.stringify(displayName(h.name))}, the TOC says ${JSON.stringify(displayName(first.path))}: the TOC is not this layer's`, digest);
  }
}
