import { type FsNode, type InodeAllocator, bytesContent, loadNode, makeDir, makeFile } from '../fs/node.js';
import { builtinFormats } from '../image/formats/builtin.js';
import { type Digest, isDigest } from '../lib/digest.js';
import type { Logger } from '../lib/logger.js';
import { type ImageReference, parseReference } from '../registry/index.js';
import type { StoredImage } from './image-store.js';
import { layerInfo, tocDigestOf } from './layer-info.js';

export interface LayerStoreDeps {
  inodes: InodeAllocator;
  /** Opens (resolving on first use) the image a reference names, with regfs's registries and credentials. */
  open(ref: string): Promise<StoredImage>;
  log: Logger;
  /**
   * How long a layer lookup waits for its image to resolve. Past it the lookup answers ENOENT and
   * containers/storage pulls the layer itself; the resolution goes on and serves the next lookup.
   */
  resolveDeadlineMs: number;
}

export interface LayerInUse {
  ref: string;
  layer: Digest;
  uses: number;
}

/** References are at most 255 + tag + digest characters; their base64 is shorter than this. */
const MAX_B64 = 1024;

/**
 * The reference a directory name encodes (Go's base64.StdEncoding, canonical only). The name is a
 * single path component: StdEncoding writes `/` only for a 6-bit group of 63, which ASCII text
 * yields only from `?` or DEL as the third byte of a group — never in a valid reference.
 */
function decodeRef(b64: string): ImageReference | undefined {
  if (b64.length > MAX_B64 || b64.length % 4 !== 0 || !/^[A-Za-z0-9+]+={0,2}$/.test(b64)) return undefined;
  const bytes = Buffer.from(b64, 'base64');
  if (bytes.toString('base64') !== b64) return undefined;
  try {
    return parseReference(bytes.toString('utf8'));
  } catch {
    return undefined;
  }
}

/**
 * `diff/`: the store's `layers/<d>/` tree (same children, loaded once for both mounts), except
 * that a stat does not wait for it. containers/storage stats `diff` of every layer at pull time,
 * and that must not index the layer; until a look inside loads it, its root shows the
 * placeholder attributes (overlayfs takes the merged root's from podman's upper dir).
 */
function lazyAlias(tree: FsNode, onFirstLook: () => void): FsNode {
  const alias = makeDir(tree.ino, { mode: tree.mode, uid: tree.uid, gid: tree.gid, mtimeMs: tree.mtimeMs });
  alias.load = async () => {
    onFirstLook();
    await loadNode(tree);
    Object.assign(alias, { mode: tree.mode, uid: tree.uid, gid: tree.gid, mtimeMs: tree.mtimeMs, nlink: tree.nlink, children: tree.children, xattrs: tree.xattrs });
  };
  return alias;
}

/**
 * The additional layer store of containers/storage (podman, CRI-O, buildah), the layout
 * stargz-store serves: `<root>/<base64(image ref)>/<digest>/` holding
 *   diff/  the layer's tree in overlay lower-dir form (the same node as the image's `layers/<d>/`),
 *   info   the JSON containers/storage decodes (layer-info.ts),
 *   blob   the raw compressed layer, fetched lazily.
 * `<digest>` is the layer digest (containers/storage 1.43, podman 4.3) or the layer's TOC digest
 * (current containers/storage, eStargz and zstd:chunked); both name the same layer.
 *
 * Use counting follows overlay.go: creating `<layer>/use` marks a use, rmdir of `<layer>` a
 * release; both answer ENOENT, which tells containers/storage the store counts them. An image
 * with a layer in use is never forgotten by the idle sweep (`inUse`).
 */
export class LayerStore {
  readonly root: FsNode;
  private readonly uses = new Map<string, Map<Digest, number>>();
  /** The formats image assembly opens layers with (view/image-assembly.ts: openLayer's default). */
  private readonly formats = builtinFormats();
  /** Images whose layers were all asked to open (openAll). */
  private readonly opened = new WeakSet<StoredImage>();

  constructor(private readonly deps: LayerStoreDeps) {
    this.root = makeDir(1, { mode: 0o555 });
    this.root.resolve = async (name) => this.refDir(name);
  }

  /** True while containers/storage holds a layer of `canonical` (a use not yet released). */
  inUse(canonical: string): boolean {
    for (const n of this.uses.get(canonical)?.values() ?? []) if (n > 0) return true;
    return false;
  }

  /** Layers in use, for `regfs ctl ls`. */
  list(): LayerInUse[] {
    const out: LayerInUse[] = [];
    for (const [ref, layers] of this.uses) for (const [layer, uses] of layers) if (uses > 0) out.push({ ref, layer, uses });
    return out;
  }

  /** `<root>/<base64 ref>/`: no network until a layer is looked up in it. */
  private refDir(name: string): FsNode | undefined {
    const ref = decodeRef(name);
    if (!ref) return undefined;
    const dir = makeDir(this.deps.inodes.allocate(), { mode: 0o555 });
    // One resolution per reference directory; a failed one is tried again by the next lookup.
    let image: Promise<StoredImage | undefined> | undefined;
    const open = (): Promise<StoredImage | undefined> => {
      image ??= this.openWithin(ref).then((s) => {
        if (!s) image = undefined;
        return s;
      });
      return image;
    };
    dir.resolve = async (key) => (isDigest(key) ? this.layerDir(await open(), key) : undefined);
    dir.onRemoveChild = (key) => {
      if (isDigest(key)) void open().then((s) => s && this.count(s, key, -1));
    };
    return dir;
  }

  private async openWithin(ref: ImageReference): Promise<StoredImage | undefined> {
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<'late'>((r) => (timer = setTimeout(() => r('late'), this.deps.resolveDeadlineMs)));
    const opened = this.deps.open(ref.canonical);
    try {
      const s = await Promise.race([opened, late]);
      if (s !== 'late') return s;
      this.deps.log.warn({ ref: ref.canonical, ms: this.deps.resolveDeadlineMs }, 'layer store: the image did not resolve in time; answering ENOENT (the runtime pulls it itself)');
      opened.catch(() => {});
      return undefined;
    } catch (e) {
      this.deps.log.info({ ref: ref.canonical, err: (e as Error).message }, 'layer store: cannot resolve the image; answering ENOENT (the runtime pulls it itself)');
      return undefined;
    } finally {
      clearTimeout(timer);
    }
  }

  /** The manifest layer a lookup key names: its digest, or its TOC digest. */
  private layerIndex(s: StoredImage, key: string): { index: number; by: 'layer' | 'toc' } | undefined {
    const layers = s.img.manifest.layers;
    const byDigest = layers.findIndex((l) => l.digest === key);
    if (byDigest >= 0) return { index: byDigest, by: 'layer' };
    const byToc = layers.findIndex((l) => tocDigestOf(l) === key);
    return byToc >= 0 ? { index: byToc, by: 'toc' } : undefined;
  }

  private layerDir(s: StoredImage | undefined, key: string): FsNode | undefined {
    if (!s) return undefined;
    const found = this.layerIndex(s, key);
    if (!found) return undefined;
    const desc = s.img.manifest.layers[found.index]!;
    // A layer regfs cannot open is not offered: the runtime falls back to pulling it.
    if (!this.formats.accepts(desc)) {
      this.deps.log.info({ ref: s.ref.canonical, layer: desc.digest, mediaType: desc.mediaType }, 'layer store: unsupported layer media type; answering ENOENT');
      return undefined;
    }
    const diff = s.node.children?.get('layers')?.children?.get(desc.digest);
    const blob = s.node.children?.get('blobs')?.children?.get(desc.digest);
    if (!diff || !blob) return undefined;
    const diffIds = (s.img.config as { rootfs?: { diff_ids?: unknown } })?.rootfs?.diff_ids;
    const diffId = Array.isArray(diffIds) && typeof diffIds[found.index] === 'string' && isDigest(diffIds[found.index]) ? (diffIds[found.index] as Digest) : undefined;
    // Without the diff_id podman 4.3 cannot name the layer; let it pull instead.
    if (found.by === 'layer' && !diffId) return undefined;
    const t = { mtimeMs: blob.mtimeMs, mode: 0o555 };
    const dir = makeDir(this.deps.inodes.allocate(), t);
    dir.children!.set('diff', lazyAlias(diff, () => this.openAll(s)));
    dir.children!.set('info', makeFile(this.deps.inodes.allocate(), bytesContent(layerInfo(desc, diffId, found.by)), { mtimeMs: blob.mtimeMs }));
    dir.children!.set('blob', blob);
    dir.nlink = 3;
    dir.onCreate = (name) => {
      if (name === 'use') this.count(s, desc.digest, +1);
    };
    return dir;
  }

  /**
   * overlayfs looks a name up in every lower dir, one after the other, and each gzip layer's first
   * look waits for its zTOC (or its pass): the first look into any layer of an image opens all of
   * its layers at once, so those fetches overlap instead of queueing behind each other (#18).
   * Failures show, and are logged, when that layer itself is looked into.
   */
  private openAll(s: StoredImage): void {
    if (this.opened.has(s)) return;
    this.opened.add(s);
    for (const l of s.layers) l.entries().catch(() => {});
  }

  private count(s: StoredImage, key: string, delta: 1 | -1): void {
    const found = this.layerIndex(s, key);
    if (!found) return;
    const layer = s.img.manifest.layers[found.index]!.digest;
    const ref = s.ref.canonical;
    let layers = this.uses.get(ref);
    if (!layers) this.uses.set(ref, (layers = new Map()));
    const n = Math.max(0, (layers.get(layer) ?? 0) + delta);
    if (n === 0) layers.delete(layer);
    else layers.set(layer, n);
    if (layers.size === 0) this.uses.delete(ref);
    s.lastUsed = Date.now();
    this.deps.log.info({ ref, layer, uses: n }, delta > 0 ? 'layer store: layer in use' : 'layer store: layer released');
  }
}
