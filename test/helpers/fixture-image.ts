import { mkdir, writeFile, cp } from 'node:fs/promises';
import { join } from 'node:path';
import { type BuiltImage, buildImage, patternBytes } from './images.js';

/**
 * A small real image: layer 1 is a copy of real files from this machine plus a 3 MiB binary-ish
 * file, layer 2 edits and deletes. Built with umoci so the layers are ordinary tar+gzip.
 */
export async function buildSmallImage(workDir: string, name = 'small'): Promise<BuiltImage> {
  return buildImage(workDir, name, [
    async (root) => {
      await mkdir(join(root, 'etc'), { recursive: true });
      await cp('/etc/os-release', join(root, 'etc/os-release'), { dereference: true });
      await cp('/usr/share/common-licenses', join(root, 'usr/share/common-licenses'), { recursive: true, dereference: true });
      await mkdir(join(root, 'data'), { recursive: true });
      await writeFile(join(root, 'data/blob.bin'), patternBytes(3 << 20, 7));
    },
    async (root) => {
      await writeFile(join(root, 'etc/motd'), 'hello from regfs\n');
      await writeFile(join(root, 'data/second.bin'), patternBytes(1 << 20, 9));
    },
  ]);
}
