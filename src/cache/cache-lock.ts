import { open, readFile, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { RegfsError } from '../lib/errors.js';
import { pidAlive } from '../lib/pid-alive.js';

export class CacheLockedError extends RegfsError {
  constructor(dir: string, pid: number) {
    super('ERR_CACHE_LOCKED', `cache dir ${dir} is in use by regfs pid ${pid}; stop it, use another --cache-dir, or serve many images from one 'regfs serve'`);
  }
}

/**
 * One owner per cache dir: a pid file created with O_EXCL. A stale file left by a killed owner
 * (its pid is gone) is taken over. The size accounting lives in one process's memory, so two
 * writers would overrun the limit; one owner keeps the bound honest.
 */
/** Dirs this process holds, so that opening one twice in-process is refused too. */
const held = new Set<string>();

export async function lockCacheDir(dir: string): Promise<() => Promise<void>> {
  const path = join(dir, 'lock');
  if (held.has(path)) throw new CacheLockedError(dir, process.pid);
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      const fh = await open(path, 'wx', 0o600);
      await fh.writeFile(`${process.pid}\n`);
      await fh.close();
      held.add(path);
      return async () => {
        held.delete(path);
        const owner = Number((await readFile(path, 'utf8').catch(() => '')).trim());
        if (owner === process.pid) await unlink(path).catch(() => {});
      };
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
      const pid = Number((await readFile(path, 'utf8').catch(() => '')).trim());
      if (pid && pid !== process.pid && pidAlive(pid)) throw new CacheLockedError(dir, pid);
      await unlink(path).catch(() => {});
    }
  }
  throw new RegfsError('ERR_CACHE_LOCKED', `cannot take the lock on cache dir ${dir}`);
}
