import { mountIdExists } from './mountpoint.js';

/**
 * Calls `onGone` once when the mount with this ID leaves the mount table. The mount table is the
 * one place where all three ways a mount goes away from outside show (`regfs unmount`,
 * `fusermount -u`, `umount -l`; test/e2e/lifecycle.test.ts checks each): fuse-native's session
 * thread ends without telling JavaScript, and a lazy detach keeps the FUSE connection open while
 * files are still open. 250 ms keeps the exit well inside 2 s; one read of a procfs file is cheap
 * and never touches the FUSE mount itself.
 */
export function watchMount(mountId: number, onGone: () => void, intervalMs = 250): { stop(): void } {
  let busy = false;
  const timer = setInterval(() => {
    if (busy) return;
    busy = true;
    void mountIdExists(mountId)
      .then((exists) => {
        if (exists) return;
        clearInterval(timer);
        onGone();
      })
      .finally(() => (busy = false));
  }, intervalMs);
  timer.unref();
  return { stop: () => clearInterval(timer) };
}
