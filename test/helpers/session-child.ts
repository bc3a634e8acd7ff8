// A regfs FUSE session in its own process, for handover tests:
//   node session-child.js <mnt> <holder-socket> <name> <node-log> mount|takeover
// Serves /big (100 MiB) and /slow (4 MiB) of pattern bytes. `mount` mounts and puts the
// descriptor in regfs-fd-holder; `takeover` gets it from there and serves it, and sends
// FUSE_NOTIFY_RESEND on SIGUSR2 (when the previous process is gone). SIGTERM: stop taking
// requests, let in-flight ones finish (1 s at most), exit without unmounting. Prints "ready".
import { ReadOnlyFilesystem } from '../../src/fs/filesystem.js';
import { FdHolder } from '../../src/fs/fd-holder.js';
import { mountSession, takeOverSession, type FuseSession } from '../../src/fs/fuse-session.js';
import { makeDir, makeFile } from '../../src/fs/node.js';
import { silentLogger } from '../../src/lib/logger.js';
import { patternContent } from './pattern-content.js';

export const BIG = 100 << 20;
export const SLOW = 4 << 20;

const [mnt, socket, name, nodeLog, mode] = process.argv.slice(2) as [string, string, string, string, string];
const root = makeDir(1);
root.children!.set('big', makeFile(2, patternContent(BIG, 'big')));
root.children!.set('slow', makeFile(3, patternContent(SLOW, 'slow')));
const fs = new ReadOnlyFilesystem(root);
const opts = { readDeadlineMs: 30_000, cacheTtlS: 60, logger: silentLogger };
const holder = new FdHolder(socket);
let session: FuseSession;
if (mode === 'mount') {
  session = mountSession(fs, mnt, { ...opts, allowOther: false, nodeLog });
  await holder.ensureRunning();
  holder.put(name, [session.fd]);
} else {
  const fds = holder.get(name);
  if (!fds) throw new Error(`no descriptor held under ${name}`);
  session = await takeOverSession(fds[0]!, fs, { ...opts, nodeLog });
}
process.on('SIGUSR2', () => process.stdout.write(session.resend() ? 'resent\n' : 'resend refused\n'));
process.on('SIGTERM', () => {
  session.stop();
  const until = Date.now() + 1000;
  const t = setInterval(() => {
    if (session.inFlight === 0 || Date.now() > until) process.exit(0);
  }, 5);
  t.unref();
});
process.stdout.write('ready\n');
