import { type ErrorCode, RegfsError } from '../lib/errors.js';

export type ErrnoName =
  | 'ENOENT'
  | 'ENOTDIR'
  | 'EISDIR'
  | 'EROFS'
  | 'EIO'
  | 'EINVAL'
  | 'EBADF'
  | 'ENODATA'
  | 'ERANGE'
  | 'ENAMETOOLONG'
  | 'ELOOP'
  | 'EINTR'
  | 'EOPNOTSUPP'
  | 'EACCES'
  | 'EBUSY'
  | 'ENODEV'
  | 'ESTALE';

/** An error fs/ raises itself and that already knows its errno: lookups, type mismatches, writes. */
export class FsError extends RegfsError {
  constructor(
    readonly errno: ErrnoName,
    message: string,
  ) {
    super('ERR_FS', message);
  }
}

/**
 * The one errno table: every code below fs/ → what the kernel hands the reader. `satisfies` makes
 * the compiler reject a code left out (or one that no longer exists). Most failures are EIO: the
 * caller can do nothing but retry later, and the log line says what it was. The exceptions are
 * the ones where a program (or a person at a shell) should act differently.
 */
export const ERRNO_OF_CODE = {
  // A store path that cannot name an image, or an image with no manifest for our platform:
  // there is no such file (ls, stat, test -e expect ENOENT; podman's additional layer store reads
  // it as "not here, pull it").
  ERR_INVALID_REFERENCE: 'ENOENT',
  ERR_INVALID_DIGEST: 'ENOENT',
  ERR_PLATFORM_NOT_FOUND: 'ENOENT',
  // The store turns "no such manifest" into ENOENT itself (the name may be a deeper repository
  // component), so a 404 that reaches fs/ is a blob the manifest names and the registry no longer
  // has: the file exists and its data cannot be produced — EIO, as for a bad sector.
  ERR_NOT_FOUND: 'EIO',
  // Our credentials (or the helper that gives them) were refused: "Permission denied" tells the
  // user what to fix; EIO would send them looking at the network.
  ERR_AUTH_FAILED: 'EACCES',
  ERR_CREDENTIAL_HELPER: 'EACCES',
  // A layer or blob of a media type we cannot read: the operation is not supported on this file
  // (as the kernel answers for a filesystem feature it lacks); the data is not damaged.
  ERR_UNSUPPORTED_MEDIA_TYPE: 'EOPNOTSUPP',
  // The read was cancelled (shutdown, or the kernel interrupted it): EINTR, so a caller that
  // retries interrupted calls does, and nobody reads it as damaged data.
  ERR_ABORTED: 'EINTR',
  // Hostile or broken content and transport failures: the data cannot be produced right now.
  // This is the contract ("a read that cannot be served answers EIO within the budget"), also
  // for the spent retry budget (not ETIMEDOUT: the kernel's own timeouts mean something else).
  ERR_MANIFEST_INVALID: 'EIO',
  ERR_HTTP_STATUS: 'EIO',
  ERR_PROTOCOL: 'EIO',
  ERR_RETRY_BUDGET: 'EIO',
  ERR_DIGEST_MISMATCH: 'EIO',
  ERR_TOO_LARGE: 'EIO',
  ERR_LAYER_FORMAT: 'EIO',
  // The local cache failed under a read (it degrades to network reads, so these rarely surface):
  // a disk error, as a disk filesystem would report it.
  ERR_CACHE_DIR: 'EIO',
  ERR_CACHE_KEY: 'EIO',
  ERR_CACHE_CORRUPT: 'EIO',
  // Start-up and CLI errors; they reach fs/ only through a reload or a nested mount in serve.
  // Each names the errno a syscall would give for the same cause.
  ERR_CACHE_LOCKED: 'EBUSY',
  ERR_NO_FUSE: 'ENODEV',
  ERR_CONFIG: 'EINVAL',
  ERR_MOUNTPOINT: 'EINVAL',
  ERR_MOUNT: 'EIO',
  ERR_TAKEOVER: 'EIO',
  ERR_DAEMON_START: 'EIO',
  ERR_CONTROL: 'EIO',
  // serve's store went away underneath it: nothing is left to answer; a disk gone away is EIO.
  ERR_UNMOUNTED: 'EIO',
  // An access profile is only ever a prefetch hint: a bad one is ignored, never a read's answer.
  ERR_PROFILE: 'EIO',
  // A layer's tar is broken (the whole layer), or one member cannot be produced (that file only):
  // damaged data either way.
  ERR_TAR_FORMAT: 'EIO',
  ERR_TAR_ENTRY_UNREADABLE: 'EIO',
  // The network failed under a read: the data cannot be produced now; trying later may work.
  ERR_DNS: 'EIO',
  ERR_CONNECT: 'EIO',
  ERR_TLS: 'EIO',
  ERR_NETWORK: 'EIO',
  // A redirect to plain HTTP that policy refuses: permission, not damage.
  ERR_PLAIN_HTTP_REFUSED: 'EACCES',
} as const satisfies Record<Exclude<ErrorCode, 'ERR_FS'>, ErrnoName>;

/** errno for anything a filesystem operation threw; a non-regfs error is a bug, answered EIO. */
export function errnoOf(e: unknown): ErrnoName {
  if (e instanceof FsError) return e.errno;
  if (e instanceof RegfsError && e.code !== 'ERR_FS') return ERRNO_OF_CODE[e.code];
  return 'EIO';
}
