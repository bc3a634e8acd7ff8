import { execFile } from 'node:child_process';
import { chmod, chown, link, mkdir, rm, symlink, writeFile, cp } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { type BuiltImage, describeLayout, patternBytes } from './images.js';

const run = promisify(execFile);

/**
 * A multi-layer image that exercises what a container runtime must get right: deletions
 * (whiteouts), an opaque directory, symlinks, hardlinks, a FIFO, a device node, odd modes and
 * owners. Built with umoci from real files; the opaque layer is a tar added with `umoci raw add-layer`.
 */
export async function buildRichImage(workDir: string): Promise<BuiltImage> {
  const layout = join(workDir, 'rich-layout');
  const bundle = join(workDir, 'rich-bundle');
  const img = `${layout}:latest`;
  await run('umoci', ['init', '--layout', layout]);
  await run('umoci', ['new', '--image', img]);
  const step = async (edit: (root: string) => Promise<void>): Promise<void> => {
    await run('umoci', ['unpack', '--image', img, bundle]);
    await edit(join(bundle, 'rootfs'));
    await run('umoci', ['repack', '--image', img, bundle]);
    await rm(bundle, { recursive: true, force: true });
  };
  await step(async (r) => {
    await mkdir(join(r, 'etc'), { recursive: true });
    await cp('/etc/os-release', join(r, 'etc/os-release'), { dereference: true });
    await cp('/usr/share/common-licenses', join(r, 'usr/share/common-licenses'), { recursive: true, dereference: true });
    await mkdir(join(r, 'opt/app/lib'), { recursive: true });
    await writeFile(join(r, 'opt/app/lib/old.so'), patternBytes(200_000, 1));
    await writeFile(join(r, 'opt/app/config'), 'v1\n');
    await mkdir(join(r, 'var/cache/junk'), { recursive: true });
    await writeFile(join(r, 'var/cache/junk/a'), 'a');
    await writeFile(join(r, 'var/cache/keep'), 'keep');
    await writeFile(join(r, 'data.bin'), patternBytes(5 << 20, 2));
    await writeFile(join(r, 'to-delete.txt'), 'bye');
    await writeFile(join(r, 'hard-a'), 'shared content\n');
    await link(join(r, 'hard-a'), join(r, 'hard-b'));
    await symlink('etc/os-release', join(r, 'os-link'));
    await symlink('/nonexistent/absolute', join(r, 'dangling'));
    await symlink('loop-b', join(r, 'loop-a'));
    await symlink('loop-a', join(r, 'loop-b'));
    await run('mkfifo', [join(r, 'fifo')]);
    await run('mknod', [join(r, 'null-dev'), 'c', '1', '3']);
    await writeFile(join(r, 'secret'), 'mode 0600 owned by 1000:1000');
    await chmod(join(r, 'secret'), 0o600);
    await chown(join(r, 'secret'), 1000, 1000);
    await writeFile(join(r, 'setuid-bin'), '#!/bin/sh\n');
    await chmod(join(r, 'setuid-bin'), 0o4755);
  });
  await step(async (r) => {
    await rm(join(r, 'to-delete.txt'));
    await rm(join(r, 'var/cache/junk'), { recursive: true });
    await writeFile(join(r, 'opt/app/config'), 'v2\n');
    await writeFile(join(r, 'etc/motd'), 'layer two\n');
    await mkdir(join(r, 'usr/share/new'), { recursive: true });
    await writeFile(join(r, 'usr/share/new/file'), patternBytes(70_000, 3));
  });
  // An opaque directory: /opt/app replaced wholesale, as `docker build` writes it.
  const staging = join(workDir, 'rich-opaque');
  await mkdir(join(staging, 'opt/app/bin'), { recursive: true });
  await writeFile(join(staging, 'opt/app/.wh..wh..opq'), '');
  await writeFile(join(staging, 'opt/app/bin/tool'), 'new tool\n');
  await chmod(join(staging, 'opt/app/bin/tool'), 0o755);
  await writeFile(join(staging, '.wh.os-link'), '');
  const tar = join(workDir, 'rich-opaque.tar');
  await run('tar', ['cf', tar, '-C', staging, '--owner=0', '--group=0', 'opt', '.wh.os-link']);
  await run('umoci', ['raw', 'add-layer', '--image', img, tar]);
  return describeLayout(layout, 'latest');
}
