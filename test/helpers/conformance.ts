import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { type BuiltImage, blobPath, describeLayout } from './images.js';

const run = promisify(execFile);
const HERE = join(import.meta.dirname, '../../../test/helpers');
export const TREE_COMPARE = join(HERE, 'tree-compare.py');

/** Writes one corpus layer tar with the real tool that writes that kind of header. */
export async function corpusLayer(work: string, kind: string, salt = ''): Promise<string> {
  const out = join(work, `${kind}${salt ? `-${salt}` : ''}.tar`);
  if (['base', 'sparse', 'oldgnu', 'big'].includes(kind)) await run('bash', [join(HERE, 'corpus/gnu-tar-layers.sh'), kind, out]);
  else await run('python3', [join(HERE, 'corpus/tarfile-layers.py'), kind, out, salt]);
  return out;
}

async function layerDigests(layout: string, tag: string): Promise<string[]> {
  return (await describeLayout(layout, tag)).layers.map((l) => l.digest);
}

/**
 * An OCI layout whose `latest` has the given layer tars (bottom first) added verbatim by
 * `umoci raw add-layer`. With `orderPair`, two more layers X then Y are added, X re-salted until
 * digest(Y) < digest(X): stacking in digest order then puts Y under X, which gives another tree
 * than the manifest order, so the test sees whether `lowerdir` carries the manifest's order.
 */
export async function assemble(work: string, name: string, tars: string[], orderPair = false): Promise<BuiltImage> {
  const layout = join(work, `${name}-layout`);
  await run('umoci', ['init', '--layout', layout]);
  await run('umoci', ['new', '--image', `${layout}:stage`]);
  for (const t of tars) await run('umoci', ['raw', 'add-layer', '--no-history', '--image', `${layout}:stage`, t]);
  if (!orderPair) {
    await run('umoci', ['tag', '--image', `${layout}:stage`, 'latest']);
    return describeLayout(layout, 'latest');
  }
  const y = await corpusLayer(work, 'order-y');
  for (let salt = 0; salt < 64; salt++) {
    const x = await corpusLayer(work, 'order-x', String(salt));
    await run('umoci', ['raw', 'add-layer', '--no-history', '--image', `${layout}:stage`, '--tag', `x${salt}`, x]);
    await run('umoci', ['raw', 'add-layer', '--no-history', '--image', `${layout}:x${salt}`, '--tag', 'latest', y]);
    const d = await layerDigests(layout, 'latest');
    if (d[d.length - 1]! < d[d.length - 2]!) return describeLayout(layout, 'latest');
  }
  throw new Error('no salt gave digest(Y) < digest(X) in 64 tries');
}

/** `umoci unpack` of the image: the ground truth. Returns the rootfs path. */
export async function unpackTruth(image: BuiltImage, bundle: string): Promise<string> {
  await run('umoci', ['unpack', '--image', `${image.layout}:${image.tag}`, bundle], { maxBuffer: 64 << 20 });
  return join(bundle, 'rootfs');
}

export interface CompareResult {
  actual: string;
  entries: number;
  diffs: string[];
}

/** Runs tree-compare.py: one result per actual tree (exit status 1 just means differences). */
export async function compareTrees(image: BuiltImage, expected: string, actual: string[]): Promise<CompareResult[]> {
  const args = [TREE_COMPARE, 'compare', expected, ...actual, '--layout', image.layout, '--tag', image.tag];
  const { stdout } = await run('python3', args, { maxBuffer: 256 << 20 }).catch((e: { code?: number; stdout?: string; stderr?: string }) => {
    if (e.code === 1 && e.stdout) return { stdout: e.stdout };
    throw new Error(`tree-compare.py failed: ${e.stderr ?? String(e)}`);
  });
  return stdout
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as CompareResult);
}

export interface SnapshotEntry {
  type: string;
  mode: string;
  uid: number;
  gid: number;
  mtime_ms?: number;
  size?: number;
  nlink?: number;
  sha256?: string;
  target?: string;
  rdev?: [number, number];
  xattrs: Record<string, string>;
}

/** tree-compare.py's snapshot of one tree (keys are Python bytes literals without the b: 'dir/caf\\xe9'). */
export async function snapshot(image: BuiltImage, root: string): Promise<{ entries: Record<string, SnapshotEntry>; hardlink_groups: string[][] }> {
  const { stdout } = await run('python3', [TREE_COMPARE, 'snapshot', root, '--layout', image.layout, '--tag', image.tag], { maxBuffer: 256 << 20 });
  return JSON.parse(stdout) as { entries: Record<string, SnapshotEntry>; hardlink_groups: string[][] };
}

/** The manifest's layer digests, bottom first. */
export async function manifestLayers(image: BuiltImage): Promise<string[]> {
  const m = JSON.parse(await readFile(blobPath(image.layout, image.manifestDigest), 'utf8')) as { layers: { digest: string }[] };
  return m.layers.map((l) => l.digest);
}
