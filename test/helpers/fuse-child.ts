// A mount in its own process, for tests that kill it: `node fuse-child.js <mnt> <holder-socket> <name>`.
// Serves /fast (bytes at once) and /slow (5 bytes whose read never finishes), keeps the session's
// /dev/fuse descriptor in regfs-fd-holder under <name>, prints "ready", and "reading <path>"
// each time a read reaches it.
import { ReadOnlyFilesystem } from '../../src/fs/filesystem.js';
import { FdHolder } from '../../src/fs/fd-holder.js';
import { mountFuse } from '../../src/fs/fuse-adapter.js';
import { bytesContent, makeDir, makeFile } from '../../src/fs/node.js';
import { silentLogger } from '../../src/lib/logger.js';

const [mnt, socket, name] = process.argv.slice(2) as [string, string, string];
const root = makeDir(1);
root.children!.set('fast', makeFile(2, bytesContent(Buffer.from('fast bytes\n'))));
root.children!.set(
  'slow',
  makeFile(3, {
    size: 5,
    read: () => {
      process.stdout.write('reading /slow\n');
      return new Promise<number>(() => {});
    },
  }),
);
const mount = await mountFuse(new ReadOnlyFilesystem(root), mnt, { readDeadlineMs: 600_000, allowOther: false, logger: silentLogger });
const holder = new FdHolder(socket);
await holder.ensureRunning();
holder.put(name, [mount.sessionFd]);
process.stdout.write('ready\n');
