import { type ByteName, displayName } from '../lib/byte-name.js';
import type { Logger } from '../lib/logger.js';
import type { TarEntry } from './tar-entry.js';

/**
 * A filesystem tree as an image describes it, before any FUSE: one per layer (overlayfs lower-dir
 * form) and one merged. File nodes are shared between trees; directories are not. Child names
 * are byte names.
 */
export interface ImageNode {
  type: 'dir' | 'file' | 'symlink' | 'chardev' | 'blockdev' | 'fifo';
  mode: number;
  uid: number;
  gid: number;
  mtimeMs: number;
  size: number;
  linkname: ByteName;
  devmajor: number;
  devminor: number;
  xattrs: Map<ByteName, Buffer>;
  children?: Map<ByteName, ImageNode>;
  /** For files: which layer's tar entry holds the bytes. */
  data?: { layer: number; entry: TarEntry };
  /** An OCI whiteout (`.wh.<name>`), shown as a 0:0 character device in the layer view. */
  whiteout?: boolean;
  /** An opaque directory (`.wh..wh..opq`): lower layers' entries below it are hidden. */
  opaque?: boolean;
  /**
   * A directory the layer has no entry for (a parent of an entry, or the root without `./`).
   * It keeps the metadata it has in the layers below, as umoci, Docker and containerd do; with
   * nothing below it is 0755 root:root with mtime 0.
   */
  implied?: boolean;
}

const WH = '.wh.';
const OPAQUE = '.wh..wh..opq';
export const OPAQUE_XATTR = 'trusted.overlay.opaque';
/** Linux reports every symlink as lrwxrwxrwx; the mode in the tar header means nothing. */
const SYMLINK_MODE = 0o777;

function dirNode(attrs?: Partial<ImageNode>): ImageNode {
  return { type: 'dir', mode: 0o755, uid: 0, gid: 0, mtimeMs: 0, size: 0, linkname: '', devmajor: 0, devminor: 0, xattrs: new Map(), children: new Map(), ...attrs };
}

function nodeFromEntry(e: TarEntry, layer: number): ImageNode {
  const xattrs = new Map(e.xattrs ?? []);
  const base = { mode: e.mode, uid: e.uid, gid: e.gid, mtimeMs: e.mtimeMs, linkname: '', devmajor: 0, devminor: 0, size: 0, xattrs };
  switch (e.type) {
    case 'dir':
      return { ...base, type: 'dir', children: new Map() };
    case 'file':
      return { ...base, type: 'file', size: e.size, data: { layer, entry: e } };
    case 'symlink':
      return { ...base, type: 'symlink', mode: SYMLINK_MODE, linkname: e.linkname, size: e.linkname.length };
    case 'chardev':
    case 'blockdev':
      return { ...base, type: e.type, devmajor: e.devmajor, devminor: e.devminor };
    default:
      return { ...base, type: 'fifo' };
  }
}

function markOpaque(d: ImageNode): void {
  d.opaque = true;
  d.xattrs.set(OPAQUE_XATTR, Buffer.from('y'));
}

export interface BuildProblem {
  /** Human-readable (UTF-8 where the bytes are, U+FFFD elsewhere). */
  path: string;
  why: string;
}

/**
 * One layer's tar entries → its tree in the form overlayfs expects of a lower dir: whiteouts as
 * 0:0 character devices, opaque directories with `trusted.overlay.opaque=y`. Entries that would
 * escape the root, or hardlinks to nothing, are dropped and reported; later duplicates win.
 * Directories without an entry are marked `implied`; `resolveImplied` gives them their metadata
 * from the layers below.
 */
export function buildLayerTree(entries: TarEntry[], layer: number, report: (p: BuildProblem) => void): ImageNode {
  const root = dirNode({ implied: true });
  const byPath = new Map<ByteName, ImageNode>([['', root]]);
  const parentOf = (path: ByteName): ImageNode => {
    const i = path.lastIndexOf('/');
    const dir = i < 0 ? '' : path.slice(0, i);
    let p = byPath.get(dir);
    if (p && p.type === 'dir') return p;
    const parent = parentOf(dir);
    const name = dir.slice(dir.lastIndexOf('/') + 1);
    const replaced = parent.children!.get(name);
    if (replaced?.whiteout) {
      // Whited out, then written into: a new directory, nothing of the lower one shows through
      // (umoci removes the lower one, then creates the parent afresh).
      p = dirNode();
      markOpaque(p);
    } else {
      p = dirNode({ implied: true });
    }
    parent.children!.set(name, p);
    byPath.set(dir, p);
    return p;
  };
  for (const e of entries) {
    const path = e.path;
    const shown = displayName(path);
    if (e.problem) report({ path: shown, why: `${e.problem}; reading it fails` });
    if (path === '') {
      if (e.type === 'dir') {
        Object.assign(root, { mode: e.mode, uid: e.uid, gid: e.gid, mtimeMs: e.mtimeMs, implied: false });
        for (const [k, v] of e.xattrs ?? []) root.xattrs.set(k, v);
      }
      continue;
    }
    if (path.split('/').some((c) => c === '..' || c === '.')) {
      report({ path: shown, why: 'path has a ".." or "." component; entry ignored' });
      continue;
    }
    const name = path.slice(path.lastIndexOf('/') + 1);
    const parent = parentOf(path);
    if (name === OPAQUE) {
      markOpaque(parent);
      continue;
    }
    if (name.startsWith(WH)) {
      const target = name.slice(WH.length);
      if (target === '' || target === '.' || target === '..') {
        report({ path: shown, why: 'whiteout without a valid target; ignored' });
        continue;
      }
      const existing = parent.children!.get(target);
      if (!existing || existing.whiteout) {
        parent.children!.set(target, { ...nodeFromEntry({ ...e, type: 'chardev', devmajor: 0, devminor: 0, xattrs: undefined }, layer), mode: 0, whiteout: true });
      } else if (existing.type === 'dir') {
        // A real entry of the same name in this layer wins over its whiteout, which still hides
        // what lower layers had below it (umoci removes every lower path this layer did not write).
        markOpaque(existing);
      }
      continue;
    }
    let node: ImageNode;
    if (e.type === 'hardlink') {
      const target = byPath.get(e.linkname.replace(/^\.?\/+/, '').replace(/\/$/, ''));
      if (!target || target.type === 'dir') {
        report({ path: shown, why: `hardlink to ${JSON.stringify(displayName(e.linkname))}, which is not an earlier file of this layer; ignored` });
        continue;
      }
      node = target; // same object: same inode
    } else {
      node = nodeFromEntry(e, layer);
    }
    const existing = parent.children!.get(name);
    if (existing && existing.type === 'dir' && node.type === 'dir') {
      // A directory listed twice, or implied before its own entry: keep its children, take the entry's attributes.
      Object.assign(existing, { mode: node.mode, uid: node.uid, gid: node.gid, mtimeMs: node.mtimeMs, implied: false });
      for (const [k, v] of node.xattrs) existing.xattrs.set(k, v);
      continue;
    }
    if (existing && !existing.whiteout) report({ path: shown, why: 'duplicate path; the later entry wins' });
    if (existing?.whiteout && node.type === 'dir') markOpaque(node);
    parent.children!.set(name, node);
    byPath.set(path, node);
  }
  return root;
}

function takeAttrs(into: ImageNode, from: ImageNode): void {
  Object.assign(into, { mode: from.mode, uid: from.uid, gid: from.gid, mtimeMs: from.mtimeMs });
  const opaque = into.xattrs.get(OPAQUE_XATTR);
  into.xattrs = new Map([...from.xattrs].filter(([k]) => k !== OPAQUE_XATTR));
  if (opaque) into.xattrs.set(OPAQUE_XATTR, opaque);
}

/**
 * Gives a layer's implied directories the metadata (mode, owner, mtime, xattrs) of the same
 * directory in `below`, the merge of the layers under it, so that stacking `layers/` with
 * overlayfs shows what the merged rootfs shows. Modifies the layer tree in place; `below` is
 * only read.
 */
export function resolveImplied(layerDir: ImageNode, below: ImageNode | undefined): void {
  if (layerDir.implied && below?.type === 'dir') takeAttrs(layerDir, below);
  for (const [name, child] of layerDir.children!) {
    if (child.type !== 'dir' || child.whiteout) continue;
    // Below an opaque directory nothing of the lower layers is visible.
    const lower = layerDir.opaque ? undefined : below?.children?.get(name);
    resolveImplied(child, lower?.type === 'dir' ? lower : undefined);
  }
}

/**
 * Applies one layer tree over the merged tree of the layers below (OCI image-spec layer.md
 * "Whiteouts"): a whiteout removes the lower entry, an opaque directory hides everything lower
 * below it, a directory over a directory merges (an implied one keeps the lower metadata),
 * anything else replaces. The layer tree is not modified.
 */
export function mergeLayer(lower: ImageNode, upper: ImageNode): void {
  if (!upper.implied) {
    Object.assign(lower, { mode: upper.mode, uid: upper.uid, gid: upper.gid, mtimeMs: upper.mtimeMs });
    for (const [k, v] of upper.xattrs) if (k !== OPAQUE_XATTR) lower.xattrs.set(k, v);
  }
  if (upper.opaque) lower.children = new Map();
  for (const [name, u] of upper.children!) {
    if (u.whiteout) {
      lower.children!.delete(name);
      continue;
    }
    if (u.type === 'dir') {
      // Directories of the merged tree are always copies made here, never a layer's own, so
      // merging into them leaves the layer trees as they were.
      const l = lower.children!.get(name);
      const merged = l && l.type === 'dir' ? l : copyDir(u);
      lower.children!.set(name, merged);
      mergeLayer(merged, u);
      continue;
    }
    lower.children!.set(name, u);
  }
}

/** An empty merged tree: the root before any layer. */
export function emptyRoot(): ImageNode {
  return dirNode();
}

/** Merges layer trees bottom to top into a new tree (implied directories resolved on the way). */
export function mergeLayers(layers: ImageNode[]): ImageNode {
  const root = emptyRoot();
  for (const layer of layers) {
    resolveImplied(layer, root);
    mergeLayer(root, layer);
  }
  return root;
}

function copyDir(d: ImageNode): ImageNode {
  return { ...d, xattrs: new Map([...d.xattrs].filter(([k]) => k !== OPAQUE_XATTR)), children: new Map(), opaque: false, implied: false };
}

/** Logs build problems: one line per entry, naming the layer. */
export function problemReporter(log: Logger, digest: string): (p: BuildProblem) => void {
  return (p) => log.warn({ layer: digest, entry: p.path }, p.why);
}
