import type { Logger } from '../lib/logger.js';
import type { TarEntry } from './tar-entry.js';

/**
 * A filesystem tree as an image describes it, before any FUSE: one per layer (overlayfs lower-dir
 * form) and one merged. File nodes are shared between trees; directories are not.
 */
export interface ImageNode {
  type: 'dir' | 'file' | 'symlink' | 'chardev' | 'blockdev' | 'fifo';
  mode: number;
  uid: number;
  gid: number;
  mtimeMs: number;
  size: number;
  linkname: string;
  devmajor: number;
  devminor: number;
  xattrs: Map<string, Buffer>;
  children?: Map<string, ImageNode>;
  /** For files: which layer's tar entry holds the bytes. */
  data?: { layer: number; entry: TarEntry };
  /** An OCI whiteout (`.wh.<name>`), shown as a 0:0 character device in the layer view. */
  whiteout?: boolean;
  /** An opaque directory (`.wh..wh..opq`): lower layers' entries below it are hidden. */
  opaque?: boolean;
}

const WH = '.wh.';
const OPAQUE = '.wh..wh..opq';
export const OPAQUE_XATTR = 'trusted.overlay.opaque';

function dirNode(attrs?: Partial<ImageNode>): ImageNode {
  return { type: 'dir', mode: 0o755, uid: 0, gid: 0, mtimeMs: 0, size: 0, linkname: '', devmajor: 0, devminor: 0, xattrs: new Map(), children: new Map(), ...attrs };
}

function nodeFromEntry(e: TarEntry, layer: number): ImageNode {
  const xattrs = new Map<string, Buffer>();
  for (const [k, v] of Object.entries(e.xattrs ?? {})) xattrs.set(k, Buffer.from(v, 'latin1'));
  const base = { mode: e.mode, uid: e.uid, gid: e.gid, mtimeMs: e.mtimeMs, linkname: '', devmajor: 0, devminor: 0, size: 0, xattrs };
  switch (e.type) {
    case 'dir':
      return { ...base, type: 'dir', children: new Map() };
    case 'file':
      return { ...base, type: 'file', size: e.size, data: { layer, entry: e } };
    case 'symlink':
      return { ...base, type: 'symlink', linkname: e.linkname, size: Buffer.byteLength(e.linkname) };
    case 'chardev':
    case 'blockdev':
      return { ...base, type: e.type, devmajor: e.devmajor, devminor: e.devminor };
    default:
      return { ...base, type: 'fifo' };
  }
}

export interface BuildProblem {
  path: string;
  why: string;
}

/**
 * One layer's tar entries → its tree in the form overlayfs expects of a lower dir: whiteouts as
 * 0:0 character devices, opaque directories with `trusted.overlay.opaque=y`. Entries that would
 * escape the root, or hardlinks to nothing, are dropped and reported; later duplicates win.
 */
export function buildLayerTree(entries: TarEntry[], layer: number, report: (p: BuildProblem) => void): ImageNode {
  const root = dirNode();
  const byPath = new Map<string, ImageNode>([['', root]]);
  const parentOf = (path: string): ImageNode => {
    const i = path.lastIndexOf('/');
    const dir = i < 0 ? '' : path.slice(0, i);
    let p = byPath.get(dir);
    if (p && p.type === 'dir') return p;
    // Tars may omit parent directories; create them as docker does (0755 root).
    const parent = parentOf(dir);
    p = dirNode();
    parent.children!.set(dir.slice(dir.lastIndexOf('/') + 1), p);
    byPath.set(dir, p);
    return p;
  };
  for (const e of entries) {
    const path = e.path;
    if (path === '') {
      if (e.type === 'dir') Object.assign(root, { mode: e.mode, uid: e.uid, gid: e.gid, mtimeMs: e.mtimeMs });
      continue;
    }
    if (path.split('/').some((c) => c === '..' || c === '.')) {
      report({ path, why: 'path has a ".." or "." component; entry ignored' });
      continue;
    }
    const name = path.slice(path.lastIndexOf('/') + 1);
    const parent = parentOf(path);
    if (name === OPAQUE) {
      parent.opaque = true;
      parent.xattrs.set(OPAQUE_XATTR, Buffer.from('y'));
      continue;
    }
    if (name.startsWith(WH)) {
      const target = name.slice(WH.length);
      if (target === '' || target === '.' || target === '..') {
        report({ path, why: 'whiteout without a valid target; ignored' });
        continue;
      }
      // A real entry of the same name in this layer wins over its whiteout (the whiteout only hides lower layers).
      if (!parent.children!.has(target) || parent.children!.get(target)!.whiteout) {
        parent.children!.set(target, { ...nodeFromEntry({ ...e, type: 'chardev', devmajor: 0, devminor: 0 }, layer), mode: 0, whiteout: true });
      }
      continue;
    }
    let node: ImageNode;
    if (e.type === 'hardlink') {
      const target = byPath.get(e.linkname.replace(/^\.?\/+/, '').replace(/\/$/, ''));
      if (!target || target.type === 'dir') {
        report({ path, why: `hardlink to ${JSON.stringify(e.linkname)}, which is not an earlier file of this layer; ignored` });
        continue;
      }
      node = target; // same object: same inode
    } else {
      node = nodeFromEntry(e, layer);
    }
    const existing = parent.children!.get(name);
    if (existing && existing.type === 'dir' && node.type === 'dir') {
      // A directory listed twice: keep its children, take the later attributes.
      Object.assign(existing, { mode: node.mode, uid: node.uid, gid: node.gid, mtimeMs: node.mtimeMs });
      for (const [k, v] of node.xattrs) existing.xattrs.set(k, v);
      continue;
    }
    if (existing && !existing.whiteout) report({ path, why: 'duplicate path; the later entry wins' });
    if (existing?.whiteout && node.type === 'dir') {
      node.opaque = true;
      node.xattrs.set(OPAQUE_XATTR, Buffer.from('y'));
    }
    parent.children!.set(name, node);
    byPath.set(path, node);
  }
  return root;
}

/**
 * Applies layer trees bottom to top (OCI image-spec layer.md "Whiteouts"): a whiteout removes the
 * lower entry, an opaque directory hides everything lower below it, a directory over a directory
 * merges, anything else replaces. The layer trees are not modified.
 */
export function mergeLayers(layers: ImageNode[]): ImageNode {
  const root = dirNode();
  for (const layer of layers) mergeInto(root, layer);
  return root;
}

function copyDir(d: ImageNode): ImageNode {
  return { ...d, xattrs: new Map([...d.xattrs].filter(([k]) => k !== OPAQUE_XATTR)), children: new Map(), opaque: false };
}

function mergeInto(lower: ImageNode, upper: ImageNode): void {
  Object.assign(lower, { mode: upper.mode, uid: upper.uid, gid: upper.gid, mtimeMs: upper.mtimeMs });
  for (const [k, v] of upper.xattrs) if (k !== OPAQUE_XATTR) lower.xattrs.set(k, v);
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
      mergeInto(merged, u);
      continue;
    }
    lower.children!.set(name, u);
  }
}

/** Logs build problems: one line per entry, naming the layer. */
export function problemReporter(log: Logger, digest: string): (p: BuildProblem) => void {
  return (p) => log.warn({ layer: digest, entry: p.path }, p.why);
}
