import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { access, mkdir, readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { type RunnableImage, pushStagedImage, stageLayers } from '../helpers/container-image.js';
import { type RunningMount, forceUnmount, makeMountpoint, startMount } from '../helpers/mount.js';
import { type RunningRegistry, startRegistry } from '../helpers/registry.js';
import { tempDir } from '../helpers/tmp.js';

const run = promisify(execFile);

let dir: { path: string; cleanup: () => Promise<void> };
let reg: RunningRegistry;
let img: RunnableImage;
let mnt: string;
let mounted: RunningMount;
const mounts: string[] = [];
const overlays: string[] = [];

before(async () => {
  dir = await tempDir('e2e-sandbox');
  reg = await startRegistry({ root: join(dir.path, 'registry'), workDir: dir.path });
  img = await pushStagedImage(reg.url, reg.host, 'sandbox/app', await stageLayers(dir.path), 'tar', dir.path);
  mnt = await makeMountpoint(dir.path, 'mnt', mounts);
  mounted = await startMount(img.ref, mnt, ['--cache-dir', join(dir.path, 'cache')]);
});

after(async () => {
  for (const o of overlays) await run('umount', ['-l', o]).catch(() => {});
  await mounted?.stop();
  for (const m of mounts) await forceUnmount(m);
  await reg?.stop();
  await dir?.cleanup();
});

/** The README's sandbox recipe: the image read-only, a fresh /dev (so /dev/null works on the nodev mount), /proc, a private /tmp. */
const bwrap = (root: string, bind: '--ro-bind' | '--bind', script: string): Promise<{ stdout: string }> =>
  run('bwrap', [bind, root, '/', '--dev', '/dev', '--proc', '/proc', '--tmpfs', '/tmp', '--unshare-all', '--die-with-parent', '/bin/sh', '-c', script]);

test('bwrap over <mnt>/rootfs runs the image\'s /bin/sh with /dev/null usable and the top layer\'s whiteout applied', async () => {
  const { stdout } = await bwrap(join(mnt, 'rootfs'), '--ro-bind', 'echo discarded > /dev/null && cat /etc/motd && ls /etc && ls /opt/app');
  assert.equal(stdout, 'layer three\ngroup\nmotd\nos-release\npasswd\ndocker-registry\npodman\nskopeo\n');
  // Without --dev the image's own /dev is all there is (none here; and the mount is nodev): the redirect fails.
  await assert.rejects(run('bwrap', ['--ro-bind', join(mnt, 'rootfs'), '/', '--unshare-all', '/bin/sh', '-c', 'echo x > /dev/null']), /\/dev\/null/);
});

test('an overlay of layers/ in manifest order with a writable upper dir: the whiteout holds, writes land in the upper dir only', async () => {
  // The README recipe: `lowerdir=$(cat <mnt>/lowerdir)`, which must be the manifest's order
  // reversed (top layer first) with the ':' of each digest escaped.
  const computed = [...img.layers].reverse().map((l) => join(mnt, 'layers', l.digest).replace(/:/g, '\\:')).join(':');
  const lowerdir = (await readFile(join(mnt, 'lowerdir'), 'utf8')).trim();
  assert.equal(lowerdir, computed, '<mnt>/lowerdir stacks the layers in manifest order');
  const upper = join(dir.path, 'upper');
  const work = join(dir.path, 'work');
  const merged = join(dir.path, 'merged');
  for (const d of [upper, work, merged]) await mkdir(d, { recursive: true });
  await run('mount', ['-t', 'overlay', 'overlay', '-o', `lowerdir=${lowerdir},upperdir=${upper},workdir=${work}`, merged]);
  overlays.push(merged);
  const { stdout } = await bwrap(merged, '--bind', 'echo written > /etc/new && echo discarded > /dev/null && test ! -e /etc/to-delete && ls /etc');
  assert.equal(stdout, 'group\nmotd\nnew\nos-release\npasswd\n');
  assert.equal(await readFile(join(upper, 'etc/new'), 'utf8'), 'written\n');
  assert.deepEqual(await readdir(upper), ['etc']);
  // The base layer in the mount still has the file the top layer deletes, and no written file.
  assert.deepEqual((await readdir(join(mnt, 'layers', img.layers[0]!.digest, 'etc'))).sort(), ['group', 'os-release', 'passwd', 'to-delete']);
  await assert.rejects(access(join(mnt, 'rootfs/etc/new')), { code: 'ENOENT' });
  await run('umount', [merged]);
  overlays.pop();
});
