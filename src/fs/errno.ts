import { RegfsError } from '../lib/errors.js';

/** An error that already knows its errno: lookups, type mismatches, write attempts. */
export class FsError extends Error {
  constructor(
    readonly errno: ErrnoName,
    message: string,
  ) {
    super(message);
  }
}

export type ErrnoName = 'ENOENT' | 'ENOTDIR' | 'EISDIR' | 'EROFS' | 'EIO' | 'EINVAL' | 'EBADF' | 'ENODATA' | 'ERANGE' | 'ENAMETOOLONG' | 'ELOOP' | 'EOPNOTSUPP';

/**
 * The one errno table. Whatever failed below fs/ (registry, cache, layer format) is EIO to the
 * kernel: the caller can do nothing else with it, and the log line says what it was.
 */
export function errnoOf(e: unknown): ErrnoName {
  if (e instanceof FsError) return e.errno;
  if (e instanceof RegfsError) return 'EIO';
  return 'EIO';
}
