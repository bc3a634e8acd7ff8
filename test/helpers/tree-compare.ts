import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { lstat, readdir, readlink } from 'node:fs/promises';
import { join } from 'node:path';

export interface TreeEntry {
  type: string;
  mode: number;
  uid: number;
  gid: number;
  size?: number;
  target?: string;
  sha256?: string;
  rdev?: number;
}

export interface TreeSnapshot {
  entries: Map<string, TreeEntry>;
  /** Sets of paths that share an inode, sorted. */
  hardlinkGroups: string[][];
}

function typeOf(mode: number): string {
  switch (mode & 0o170000) {
    case 0o040000: return 'dir';
    case 0o100000: return 'file';
    case 0o120000: return 'symlink';
    case 0o020000: return 'chardev';
    case 0o060000: return 'blockdev';
    case 0o010000: return 'fifo';
    case 0o140000: return 'socket';
    default: return `unknown(${mode.toString(8)})`;
  }
}

function sha256(path: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const h = createHash('sha256');
    createReadStream(path).on('data', (d) => h.update(d)).on('end', () => resolve(h.digest('hex'))).on('error', reject);
  });
}

/** Everything a container would see of a tree: types, modes, owners, sizes, links, content, hardlink groups. */
export async function snapshotTree(root: string, opts: { hash?: boolean } = {}): Promise<TreeSnapshot> {
  const entries = new Map<string, TreeEntry>();
  const inodes = new Map<string, string[]>();
  const walk = async (rel: string): Promise<void> => {
    for (const name of (await readdir(join(root, rel))).sort()) {
      const path = rel ? `${rel}/${name}` : name;
      const abs = join(root, path);
      const st = await lstat(abs);
      const type = typeOf(st.mode);
      const e: TreeEntry = { type, mode: st.mode & 0o7777, uid: st.uid, gid: st.gid };
      if (type === 'file') {
        e.size = st.size;
        if (opts.hash !== false) e.sha256 = await sha256(abs);
        if (st.nlink > 1) {
          const key = String(st.ino);
          inodes.set(key, [...(inodes.get(key) ?? []), path]);
        }
      }
      if (type === 'symlink') e.target = await readlink(abs);
      if (type === 'chardev' || type === 'blockdev') e.rdev = st.rdev;
      entries.set(path, e);
      if (type === 'dir') await walk(path);
    }
  };
  await walk('');
  const hardlinkGroups = [...inodes.values()].filter((g) => g.length > 1).map((g) => g.sort()).sort((a, b) => a[0]!.localeCompare(b[0]!));
  return { entries, hardlinkGroups };
}

/** Human-readable differences, empty when the trees are the same. */
export function diffTrees(a: TreeSnapshot, b: TreeSnapshot, ignoreRootAttrs = true): string[] {
  const out: string[] = [];
  for (const [p, ea] of a.entries) {
    const eb = b.entries.get(p);
    if (!eb) out.push(`only in first: ${p}`);
    else if (JSON.stringify(ea) !== JSON.stringify(eb)) out.push(`differs: ${p}: ${JSON.stringify(ea)} vs ${JSON.stringify(eb)}`);
  }
  for (const p of b.entries.keys()) if (!a.entries.has(p)) out.push(`only in second: ${p}`);
  if (JSON.stringify(a.hardlinkGroups) !== JSON.stringify(b.hardlinkGroups)) out.push(`hardlink groups differ: ${JSON.stringify(a.hardlinkGroups)} vs ${JSON.stringify(b.hardlinkGroups)}`);
  void ignoreRootAttrs;
  return out;
}
