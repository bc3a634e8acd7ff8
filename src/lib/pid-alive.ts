/**
 * Whether process `pid` exists: signal 0 checks without sending anything. EPERM means it exists
 * but belongs to another user (a lock or pid file of a root daemon read by a user).
 */
export function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}
