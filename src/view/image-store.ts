import { join } from 'node:path';
import { type FsNode, type InodeAllocator, makeDir } from '../fs/node.js';
import type { Layer } from '../image/layer.js';
import type { BlobReader } from '../lib/blob-reader.js';
import type { Logger } from '../lib/logger.js';
import { type ImageReference, type ResolvedImage, parseReference } from '../registry/index.js';
import { type AssemblyDeps, assembleImage } from './image-assembly.js';
import type { ProfileSession } from './profile-recorder.js';
import type { ImageRecords } from './image-records.js';
import { isStoreRegistry, meansNoSuchImage, storeNameCandidates } from './store-names.js';


export interface StoredImage {
  ref: ImageReference;
  img: ResolvedImage;
  /** Path under the store root, e.g. ["127.0.0.1:5000", "app", "v1"]. */
  path: string[];
  node: FsNode;
  layers: Layer[];
  lastUsed: number;
  /** Ends the image's access-profile session (saves what it recorded); set once the image is first used. */
  stopProfile?: (() => Promise<void>) | undefined;
}


export interface ImageStoreDeps extends Omit<AssemblyDeps, 'touch' | 'onProgress'> {
  records: ImageRecords;
  resolve(ref: ImageReference): Promise<ResolvedImage>;
  source(ref: ImageReference): BlobReader;
  log: Logger;
  /** Where the store is mounted (absolute), for each image's `lowerdir` file. */
  mountpoint?: string | undefined;
  /** Access profiles: a session per image, started when the image's directory is first used. */
  profiles?: ((ref: ImageReference, img: ResolvedImage) => ProfileSession) | undefined;
}

/**
 * The `serve` store: `<root>/<registry>/<repo…>/<tag or sha256:…>/` resolves on first lookup and
 * holds the same layout as `regfs mount`. A name under a repository path is tried as a tag (or
 * digest) first, and is a deeper repository component if the registry has no such manifest.
 */
export class ImageStore {
  readonly root: FsNode;
  private readonly images = new Map<string, StoredImage>();

  constructor(private readonly deps: ImageStoreDeps) {
    this.root = makeDir(1, { mode: 0o555 });
    this.root.resolve = async (name) => (isStoreRegistry(name) ? this.namespace(this.root, name, name, []) : undefined);
  }

  /** Re-creates images seen before the restart, from their records: they list with no network. */
  async restore(): Promise<number> {
    const imgs = await this.deps.records.loadAll();
    for (const img of imgs) this.attach(img.reference, img, this.pathOf(img.reference));
    return imgs.length;
  }

  list(): StoredImage[] {
    return [...this.images.values()];
  }

  /** Opens (resolving if needed) the image `ref` names, as if it had been looked up. */
  async open(refText: string): Promise<StoredImage> {
    const ref = parseReference(refText);
    const existing = this.images.get(ref.canonical);
    if (existing) return existing;
    const img = await this.deps.resolve(ref);
    await this.deps.records.save(img).catch((e: Error) => this.deps.log.warn({ ref: ref.canonical, err: e.message }, 'cannot save the image record'));
    return this.attach(ref, img, this.pathOf(ref));
  }

  /** Drops an image from the tree (and, with `record`, from what a restart brings back). */
  async forget(refText: string, record = true): Promise<boolean> {
    const ref = parseReference(refText);
    const s = this.images.get(ref.canonical);
    if (record) await this.deps.records.remove(ref.canonical);
    if (!s) return false;
    this.images.delete(ref.canonical);
    await s.stopProfile?.();
    const parent = this.dirAt(s.path.slice(0, -1));
    parent?.children?.delete(s.path[s.path.length - 1]!);
    return true;
  }

  /** Ends every image's access-profile session (the daemon is stopping): recordings are saved. */
  async stopProfiles(): Promise<void> {
    await Promise.all([...this.images.values()].map((s) => s.stopProfile?.()));
  }

  /** Forgets images unused for `idleMs`, except those `keep` holds (layers a runtime uses); their cache and records stay. */
  sweep(idleMs: number, keep: (s: StoredImage) => boolean = () => false): string[] {
    const now = Date.now();
    const gone: string[] = [];
    for (const s of this.images.values()) {
      if (now - s.lastUsed > idleMs && !keep(s)) {
        void this.forget(s.ref.canonical, false);
        gone.push(s.ref.canonical);
      }
    }
    return gone;
  }

  private pathOf(ref: ImageReference): string[] {
    return [ref.registry, ...ref.repository.split('/'), ref.digest ?? ref.tag ?? 'latest'];
  }

  private dirAt(path: string[]): FsNode | undefined {
    let n: FsNode | undefined = this.root;
    for (const p of path) n = n?.children?.get(p);
    return n;
  }

  private namespace(parent: FsNode, name: string, registry: string, path: string[]): FsNode {
    const existing = parent.children?.get(name);
    if (existing) return existing;
    const dir = makeDir(this.deps.inodes.allocate(), { mode: 0o555 });
    dir.resolve = (child) => this.resolveName(dir, registry, [...path], child);
    return dir;
  }

  private async resolveName(dir: FsNode, registry: string, path: string[], name: string): Promise<FsNode | undefined> {
    const { image: ref, component } = storeNameCandidates(registry, path, name);
    if (ref) {
      try {
        const img = await this.deps.resolve(ref);
        await this.deps.records.save(img).catch((e: Error) => this.deps.log.warn({ ref: ref.canonical, err: e.message }, 'cannot save the image record'));
        return this.attach(ref, img, [registry, ...path, name], false).node;
      } catch (e) {
        if (!meansNoSuchImage(e)) throw e;
        this.deps.log.debug({ ref: ref.canonical, err: (e as Error).message }, 'not an image; trying as a repository component');
      }
    }
    return component ? this.namespace(dir, name, registry, [...path, name]) : undefined;
  }

  /** Puts an image node into the tree at `path`, creating the directories above it. */
  private attach(ref: ImageReference, img: ResolvedImage, path: string[], insert = true): StoredImage {
    const existing = this.images.get(ref.canonical);
    if (existing) return existing;
    let stored!: StoredImage;
    const profile = this.deps.profiles?.(ref, img);
    const { root, layers } = assembleImage(img, this.deps.source(ref), {
      ...this.deps,
      touch: () => void (stored.lastUsed = Date.now()),
      imageDir: this.deps.mountpoint === undefined ? undefined : join(this.deps.mountpoint, ...path),
      profile: profile?.hooks,
    });
    stored = { ref, img, path, node: root, layers, lastUsed: Date.now() };
    // Restored images are attached at start-up, used or not: the profile starts (replays, records)
    // at the first look inside the image's directory, not before.
    if (profile?.hooks) root.load = async () => void (stored.stopProfile = profile.start());
    this.images.set(ref.canonical, stored);
    if (insert) {
      let dir = this.root;
      for (let i = 0; i < path.length - 1; i++) {
        const name = path[i]!;
        let next = dir.children!.get(name);
        if (!next) {
          next = this.namespace(dir, name, path[0]!, path.slice(1, i + 1));
          dir.children!.set(name, next);
          dir.nlink++;
        }
        dir = next;
      }
      dir.children!.set(path[path.length - 1]!, root);
      dir.nlink++;
    }
    return stored;
  }
}
