import type { Digest } from '../../lib/digest.js';
import { sha256Digest } from '../../lib/hash.js';
import type { Layer, LayerDeps, LayerDescriptor } from '../layer.js';
import { type TarEntry, normalisePath } from '../tar-entry.js';
import { BLOCK, parseHeader } from '../tar-header.js';
import { type ZtocLayout, layoutFromZtoc } from './convert.js';
import { ZtocError } from './errors.js';
import { SociSpanReader } from './span-reader.js';
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

type State = { kind: 'soci'; layout: ZtocLayout; reader: SociSpanReader } | { kind: 'fallback'; layer: Layer };

/**
 * A gzip or tar layer served through its SOCI zTOC: the tree comes from the TOC and reads inflate
 * one verified span each. The zTOC is trusted only after its blob digest, its structure, its
 * sizes and the layer's first tar header agree; later, a span that fails its digest or does not
 * inflate turns the layer over to `fallback` (the local pass) for good. Each refusal is one
 * warning, and no byte is served that was not checked.
 */
export function openSociLayer(desc: LayerDescriptor, format: 'gzip' | 'tar', ztoc: ZtocRef, deps: LayerDeps, fallback: () => Layer): Layer {
  let state: Promise<State> | undefined;
  let fallbackLayer: Layer | undefined;
  let byPath: Promise<Map<string, TarEntry>> | undefined;
  let refused = false;
  const readBlob = (offset: number, into: Uint8Array, signal?: AbortSignal): Promise<number> => deps.blobs.readAt(desc.digest, offset, into, signal);

  const giveUp = (e: Error): State => {
    if (!refused) {
      refused = true;
      deps.log.warn({ layer: desc.digest, ztoc: ztoc.digest, err: e.message }, 'SOCI zTOC refused; the layer is served by the local pass');
      deps.onLayerServed?.(desc.digest, 'soci-refused');
    }
    fallbackLayer ??= fallback();
    return { kind: 'fallback', layer: fallbackLayer };
  };

  const load = async (): Promise<State> => {
    try {
      const layout = await loadLayout(desc, format, ztoc, deps);
      const reader = new SociSpanReader(desc.digest, layout, readBlob, deps.spans);
      await checkFirstHeader(reader, layout, desc.digest);
      deps.onLayerServed?.(desc.digest, 'soci');
      return { kind: 'soci', layout, reader };
    } catch (e) {
      if (e instanceof ZtocError) return giveUp(e);
      throw e;
    }
  };
  const current = (): Promise<State> => {
    if (!state) {
      state = load();
      state.catch(() => (state = undefined));
    }
    return state;
  };

  return {
    descriptor: desc,
    async entries() {
      const s = await current();
      return s.kind === 'soci' ? s.layout.entries : s.layer.entries();
    },
    async read(entry, offset, into, signal) {
      const s = await current();
      if (s.kind === 'soci') {
        const len = Math.max(0, Math.min(into.length, entry.size - offset));
        if (len === 0) return 0;
        try {
          return await s.reader.read(entry.dataOffset + offset, into.subarray(0, len), signal);
        } catch (e) {
          if (!(e instanceof ZtocError)) throw e;
          state = Promise.resolve(giveUp(e));
        }
      }
      // The tree already handed out came from the zTOC: find the same member in the local pass.
      const fb = fallbackLayer!;
      byPath ??= fb.entries().then((list) => new Map(list.map((x) => [x.path, x])));
      const same = (await byPath).get(entry.path);
      if (!same || same.type !== entry.type) throw new ZtocError(`${JSON.stringify(entry.path)} is not in the layer`, desc.digest);
      return fb.read(same, offset, into, signal);
    },
  };
}

async function loadLayout(desc: LayerDescriptor, format: 'gzip' | 'tar', ztoc: ZtocRef, deps: LayerDeps): Promise<ZtocLayout> {
  const claimed = ztoc.annotations?.[ANN_LAYER_DIGEST];
  if (claimed !== undefined && claimed !== desc.digest) throw new ZtocError(`the SOCI index gives it for layer ${claimed}`, desc.digest);
  if (ztoc.size <= 0 || ztoc.size > MAX_ZTOC_BYTES) throw new ZtocError(`zTOC blob of ${ztoc.size} bytes`, desc.digest);
  const blob = Buffer.allocUnsafe(ztoc.size);
  const n = await deps.blobs.readAt(ztoc.digest, 0, blob);
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
    if (!sameName || !sameSize || !sameTime) throw new ZtocError(`the layer's first member is ${JSON.stringify(h.name)}, the TOC says ${JSON.stringify(first.path)}: the TOC is not this layer's`, digest);
  }
}
