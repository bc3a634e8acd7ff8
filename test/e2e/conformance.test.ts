import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdir, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { type CompareResult, assemble, compareTrees, corpusLayer, manifestLayers, snapshot, unpackTruth } from '../helpers/conformance.js';
import { type BuiltImage, pushImage } from '../helpers/images.js';
import { forceUnmount, makeMountpoint, startMount } from '../helpers/mount.js';
import { type RunningRegistry, startRegistry } from '../helpers/registry.js';
import { tempDir } from '../helpers/tmp.js';

/**
 * The conformance corpus of #11: images built from layers that real tools wrote (GNU tar
 * --format=pax --xattrs --sparse, Python's tarfile for headers GNU tar will not write, setcap),
 * assembled with `umoci raw add-layer`, pushed with skopeo. For each, `rootfs/` and the kernel
 * overlay of `layers/` stacked from `<mnt>/lowerdir` must equal `umoci unpack`, as compared by
 * test/helpers/tree-compare.py (its rules are written at its top).
 */
const run = promisify(execFile);

let dir: { path: string; cleanup: () => Promise<void> };
let reg: RunningRegistry;
const mounts: string[] = [];
const images: Record<string, BuiltImage> = {};

before(async () => {
  dir = await tempDir('e2e-conformance');
  reg = await startRegistry({ root: join(dir.path, 'storage'), workDir: dir.path });
  const w = dir.path;
  const tiny = await corpusLayer(w, 'order-x', 'tiny');
  images.corpus = await assemble(w, 'corpus', [await corpusLayer(w, 'base'), await corpusLayer(w, 'sparse'), await corpusLayer(w, 'implied'), await corpusLayer(w, 'whiteouts')], true);
  // overlayfs needs two lower dirs at least: single-purpose images get a tiny second layer.
  images.names = await assemble(w, 'names', [await corpusLayer(w, 'names'), tiny]);
  images.oldgnu = await assemble(w, 'oldgnu', [await corpusLayer(w, 'oldgnu'), tiny]);
  images.big = await assemble(w, 'big', [await corpusLayer(w, 'big'), tiny]);
  for (const [name, img] of Object.entries(images)) await pushImage(img, reg.host, `conformance/${name}`);
});

after(async () => {
  for (const m of mounts.reverse()) {
    await run('umount', [m]).catch(() => {});
    await forceUnmount(m);
  }
  await reg?.stop();
  await dir?.cleanup();
});

/**
 * Mounts the image, stacks `layers/` with the kernel overlay in the order `<mnt>/lowerdir` gives,
 * and hands both trees to `check`; unmounts everything after.
 */
async function withImage(name: string, check: (t: { mnt: string; rootfs: string; overlay: string; lowerdir: string }) => Promise<void>): Promise<void> {
  const mnt = await makeMountpoint(dir.path, `mnt-${name}`, mounts);
  const overlay = join(dir.path, `overlay-${name}`);
  await mkdir(overlay, { recursive: true });
  const m = await startMount(`${reg.host}/conformance/${name}`, mnt, ['--cache-dir', join(dir.path, `cache-${name}`), '--log-level', 'warn']);
  try {
    const lowerdir = await readFile(join(mnt, 'lowerdir'), 'utf8');
    await run('mount', ['-t', 'overlay', 'overlay', '-o', `ro,lowerdir=${lowerdir}`, overlay]);
    mounts.push(overlay);
    try {
      await check({ mnt, rootfs: join(mnt, 'rootfs'), overlay, lowerdir });
    } finally {
      await run('umount', [overlay]);
    }
  } finally {
    assert.deepEqual(await m.stop(), [0, null], m.stderr());
  }
}

/** Both trees (rootfs/, then the overlay) equal the truth; the message lists every difference of both. */
function assertSame(results: CompareResult[], minEntries: number): void {
  assert.equal(results.length, 2);
  for (const r of results) assert.ok(r.entries >= minEntries, `${r.actual}: compared ${r.entries} entries, expected at least ${minEntries}`);
  assert.deepEqual({ rootfs: results[0]!.diffs, overlay: results[1]!.diffs }, { rootfs: [], overlay: [] });
}

test('corpus (GNU tar pax+xattrs+sparse, tarfile implied parents, whiteouts, opaque dir, manifest order ≠ digest order): rootfs/ and the overlay from lowerdir equal umoci unpack', async () => {
  const img = images.corpus!;
  const truth = await unpackTruth(img, join(dir.path, 'truth-corpus'));
  const t = await snapshot(img, truth);
  // The corpus holds what it claims (so an equal comparison means something).
  const e = t.entries;
  assert.equal(e["'bin/capped'"]!.xattrs["'security.capability'"], '01000002c0000080000000000000000000000000');
  assert.equal(e["'etc/keep'"]!.xattrs["'user.binary'"], '00ff80fe7f0a');
  assert.equal(e["'etc/keep'"]!.mtime_ms, -301_233_599_750, '1960-06-15 12:00:00.25');
  assert.equal(e["'gnu-1950'"]!.mtime_ms, -631_152_000_000);
  assert.equal(e["'pax-1960'"]!.mtime_ms, -300_000_000_500);
  assert.deepEqual([e["'tmp'"]!.mode, e["'home/user'"]!.mode, e["'home/user'"]!.uid, e["'srv'"]!.mode], ['0o1777', '0o700', 1000, '0o2775']);
  assert.equal(e["'tmp/x'"]!.type, 'file', 'tmp/x was added without a tmp/ entry');
  assert.deepEqual([e["'sparse10m'"]!.size, e["'s/v00'"]!.size, e["'s/v01'"]!.size, e["'s/v10'"]!.size], [10485760, 5242880, 5242880, 5242880]);
  assert.deepEqual([e["'.'"]!.mode, e["'.'"]!.mtime_ms], ['0o751', 936_868_149_000]);
  assert.deepEqual(t.hardlink_groups, [["'a/f'", "'b/hardlink'"]]);
  assert.deepEqual([e["'dev/null'"]!.rdev, e["'dev/sda'"]!.rdev, e["'fifo'"]!.type], [[1, 3], [8, 0], 'fifo']);
  assert.equal(e["'etc/old'"], undefined, 'whited out');
  assert.equal(e["'opt/app/lib'"], undefined, 'hidden by the opaque directory');
  assert.equal(e["'a/gone/x'"], undefined, 'directory whited out and re-created');
  assert.equal(e["'a/gone/again'"]!.type, 'file');
  assert.equal(e["'b/newdir/sub'"]!.mode, '0o755', 'implied with nothing below');
  assert.equal(await readFile(join(truth, 'order/f'), 'utf8'), 'Y');
  const layers = await manifestLayers(img);
  assert.notDeepEqual([...layers].sort(), layers, 'digest order differs from the manifest order');

  await withImage('corpus', async ({ mnt, rootfs, overlay, lowerdir }) => {
    assert.equal(lowerdir, [...layers].reverse().map((d) => join(mnt, 'layers', d).replace(/:/g, '\\:')).join(':'));
    assertSame(await compareTrees(img, truth, [rootfs, overlay]), 40);
    // What `ls layers/ | tac` used to stack (digest order) is another tree: order/f comes out "X".
    const wrong = join(dir.path, 'overlay-digest-order');
    await mkdir(wrong, { recursive: true });
    const digestOrder = [...layers].sort().reverse().map((d) => join(mnt, 'layers', d).replace(/:/g, '\\:')).join(':');
    await run('mount', ['-t', 'overlay', 'overlay', '-o', `ro,lowerdir=${digestOrder}`, wrong]);
    try {
      assert.equal(await readFile(join(wrong, 'order/f'), 'utf8'), 'X');
    } finally {
      await run('umount', [wrong]);
    }
  });
});

test('getcap on the setcap file prints exactly cap_setgid,cap_setuid,cap_setfcap=ep through rootfs/ and through the overlay, as on the unpacked image', async () => {
  const truth = join(dir.path, 'truth-corpus', 'rootfs');
  const caps = async (p: string): Promise<string> => (await run('getcap', [p])).stdout.slice(p.length).trim();
  const want = await caps(join(truth, 'bin/capped'));
  assert.equal(want, 'cap_setgid,cap_setuid,cap_setfcap=ep');
  await withImage('corpus', async ({ rootfs, overlay }) => {
    assert.equal(await caps(join(rootfs, 'bin/capped')), want);
    assert.equal(await caps(join(overlay, 'bin/capped')), want);
  });
});

test('non-UTF-8 names and link targets in ustar name and prefix, GNU L/K, PAX hdrcharset=BINARY, UTF-8 PAX names: rootfs/ and the overlay equal umoci unpack byte for byte', async () => {
  const img = images.names!;
  const truth = await unpackTruth(img, join(dir.path, 'truth-names'));
  const t = await snapshot(img, truth);
  const names = Object.keys(t.entries).filter((k) => k.startsWith("'names/"));
  assert.equal(names.length, 12, names.join(' '));
  assert.ok(t.entries["'names/caf\\xe9'"] && t.entries["'names/caf\\xff'"], 'two names that decode to the same U+FFFD text');
  assert.equal(t.entries["'names/ustar-link'"]!.target, "'caf\\xe9'");
  assert.equal(t.entries["'names/pax-xattr'"]!.xattrs["'user.bin'"], 'ff800001');
  await withImage('names', async ({ rootfs, overlay }) => {
    assertSame(await compareTrees(img, truth, [rootfs, overlay]), 14);
  });
});

test('old GNU sparse (type S), which umoci 0.4.7 refuses: rootfs/ and the overlay equal what GNU tar extracts, a 5 MiB file with 2 data runs', async () => {
  const img = images.oldgnu!;
  const truth = join(dir.path, 'truth-oldgnu');
  await mkdir(truth, { mode: 0o755 });
  for (const kind of ['oldgnu', 'order-x']) await run('tar', ['--numeric-owner', '-xpf', join(dir.path, kind === 'oldgnu' ? 'oldgnu.tar' : 'order-x-tiny.tar'), '-C', truth]);
  await run('chmod', ['0755', truth]);
  await withImage('oldgnu', async ({ rootfs, overlay }) => {
    assert.equal((await stat(join(rootfs, 's/oldgnu'))).size, 5242880);
    assertSame(await compareTrees(img, truth, [rootfs, overlay]), 5);
  });
});

test('a 5 GiB sparse file (PAX 1.0) is a 5368709120-byte file whose data and holes equal umoci unpack, through rootfs/ and the overlay', async () => {
  const img = images.big!;
  const truth = await unpackTruth(img, join(dir.path, 'truth-big'));
  await withImage('big', async ({ rootfs, overlay }) => {
    assert.equal((await stat(join(rootfs, 'big5g'))).size, 5_368_709_120);
    const { stdout } = await run('sh', ['-c', `dd if=${join(rootfs, 'big5g')} bs=1 skip=2684354560 count=6 status=none`]);
    assert.equal(stdout, 'middle');
    assertSame(await compareTrees(img, truth, [rootfs, overlay]), 4);
  });
  await run('rm', ['-rf', join(dir.path, 'truth-big')]);
});
