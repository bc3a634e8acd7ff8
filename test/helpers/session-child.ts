// A kept regfs mount in its own process, for handover tests:
//   node session-child.js <mnt> <holder-socket> <state-dir>
// Serves /big (100 MiB) and /slow (4 MiB) of pattern bytes through openKeptMount with
// regfs-fd-holder: the first process mounts, a later one takes over (and asks the one before to
// hand over). SIGUSR2: hand over and exit without unmounting. Prints "ready" (and "took over").
import { ReadOnlyFilesystem } from '../../src/fs/filesystem.js';
import { FdHolder } from '../../src/fs/fd-holder.js';
import { openKeptMount } from '../../src/fs/kept-mount.js';
import { makeDir, makeFile } from '../../src/fs/node.js';
import type { Logger } from '../../src/lib/logger.js';
import { patternContent } from './pattern-content.js';

const [mnt, socket, stateDir] = process.argv.slice(2) as [string, string, string];
const root = makeDir(1);
root.children!.set('big', makeFile(2, patternContent(100 << 20, 'big')));
root.children!.set('slow', makeFile(3, patternContent(4 << 20, 'slow')));
// Log lines go to stdout, one JSON object each, for the test to read.
const line = (level: string) => (obj: object, msg?: string) => process.stdout.write(`${JSON.stringify({ level, msg, ...obj })}\n`);
const logger: Logger = { debug() {}, info: line('info'), warn: line('warn'), error: line('error') };
const holder = new FdHolder(socket);
await holder.ensureRunning();
const mount = await openKeptMount(new ReadOnlyFilesystem(root), mnt, { readDeadlineMs: 30_000, cacheTtlS: 60, allowOther: false, logger, keeper: holder, stateDir });
process.on('SIGUSR2', () => void mount.handOver().then(() => process.exit(0)));
process.stdout.write(mount.tookOver ? 'ready (took over)\n' : 'ready\n');
