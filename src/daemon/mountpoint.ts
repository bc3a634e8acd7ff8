import { execFile } from 'node:child_process';
import { readdir, readFile, stat } from 'node:fs/promises';
import { resolve } from 'node:path';
import { promisify } from 'node:util';
import { RegfsError } from '../lib/errors.js';

const run = promisify(execFile);

class MountpointError extends RegfsError {
  constructor(path: string, why: string) {
    super('ERR_MOUNTPOINT', `mountpoint ${path}: ${why}`);
  }
}

interface MountInfoEntry {
  id: number;
  mountpoint: string;
  fstype: string;
}

/** /proc/self/mountinfo (proc(5)): procfs, so reading it never touches a FUSE mount of ours. */
async function mountInfo(): Promise<MountInfoEntry[]> {
  const info = await readFile('/proc/self/mountinfo', 'utf8').catch(() => '');
  const out: MountInfoEntry[] = [];
  for (const line of info.split('\n')) {
    const f = line.split(' ');
    // mountinfo escapes spaces etc. as octal.
    const mp = (f[4] ?? '').replace(/\\(\d{3})/g, (_m, o: string) => String.fromCharCode(parseInt(o, 8)));
    const sep = f.indexOf('-');
    if (sep > 0) out.push({ id: Number(f[0]), mountpoint: mp, fstype: f[sep + 1] ?? '' });
  }
  return out;
}

/** The fuse mounts at `path` according to the kernel (/proc/self/mountinfo), fstype included. */
async function mountsAt(path: string): Promise<string[]> {
  const abs = resolve(path);
  return (await mountInfo()).filter((m) => m.mountpoint === abs).map((m) => m.fstype);
}

/** The mount ID of the topmost FUSE mount at `path` (mountinfo lists it last), if any. */
export async function fuseMountIdAt(path: string): Promise<number | undefined> {
  const abs = resolve(path);
  return (await mountInfo()).filter((m) => m.mountpoint === abs && m.fstype.startsWith('fuse')).pop()?.id;
}

/** Whether the mount with this ID still exists (it goes with `fusermount -u`, `umount`, `umount -l`). */
export async function mountIdExists(id: number): Promise<boolean> {
  const all = await mountInfo();
  // An empty table means mountinfo could not be read (there is always a root mount): not "gone".
  return all.length === 0 || all.some((m) => m.id === id);
}

/** A FUSE mount whose daemon died answers ENOTCONN ("Transport endpoint is not connected"). */
async function isDeadMount(path: string): Promise<boolean> {
  try {
    await stat(path);
    return false;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'ENOTCONN';
  }
}

async function fusermount(args: string[]): Promise<void> {
  await run('fusermount', args).catch(async (e: NodeJS.ErrnoException & { stderr?: string }) => {
    if (e.code === 'ENOENT') {
      // No fusermount (fuse3 not installed): as root, umount(8) does the same.
      await run('umount', args.includes('-z') ? ['-l', args[args.length - 1]!] : [args[args.length - 1]!]);
      return;
    }
    throw new MountpointError(args[args.length - 1]!, (e.stderr ?? e.message).trim());
  });
}

/**
 * Unmounts: a clean unmount first, a lazy one when the mount is busy (open files keep working
 * until closed, new lookups fail). A dead mount is cleared the same way.
 */
export async function unmountPath(path: string): Promise<'clean' | 'lazy' | 'not-mounted'> {
  const abs = resolve(path);
  if ((await mountsAt(abs)).length === 0 && !(await isDeadMount(abs))) return 'not-mounted';
  try {
    await fusermount(['-u', abs]);
    return 'clean';
  } catch {
    await fusermount(['-u', '-z', abs]);
    return 'lazy';
  }
}

/** Makes `path` ready to mount on: clears a dead mount, refuses a live one. */
export async function prepareMountpoint(path: string): Promise<string> {
  const abs = resolve(path);
  if (await isDeadMount(abs)) {
    await fusermount(['-u', '-z', abs]);
  } else if ((await mountsAt(abs)).some((t) => t.startsWith('fuse'))) {
    throw new MountpointError(abs, 'is already mounted; run `regfs unmount` on it first');
  }
  let st;
  try {
    st = await stat(abs);
  } catch (e) {
    throw new MountpointError(abs, (e as NodeJS.ErrnoException).code === 'ENOENT' ? 'does not exist (create the directory first)' : (e as Error).message);
  }
  if (!st.isDirectory()) throw new MountpointError(abs, 'is not a directory');
  // libfuse refuses a non-empty directory with a cryptic message; say it plainly.
  if ((await readdir(abs)).length > 0) throw new MountpointError(abs, 'is not empty (mount on an empty directory)');
  return abs;
}

/** fuse-native needs /dev/fuse and libfuse.so.2; say what to install when either is missing. */
export async function loadFuseAdapter(): Promise<typeof import('../fs/fuse-adapter.js')> {
  try {
    await stat('/dev/fuse');
  } catch {
    throw new RegfsError('ERR_NO_FUSE', '/dev/fuse is missing: load the fuse module (modprobe fuse) or, in a container, pass --device /dev/fuse --cap-add SYS_ADMIN');
  }
  try {
    return await import('../fs/fuse-adapter.js');
  } catch (e) {
    throw new RegfsError('ERR_NO_FUSE', `cannot load FUSE support (${(e as Error).message.split('\n')[0]}): install libfuse2 and fuse3 (apt-get install -y libfuse2 fuse3)`);
  }
}
