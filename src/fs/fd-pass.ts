import { requireNative } from '../lib/native.js';

/** native/fuse/fd-pass.c: descriptors over unix sockets (SCM_RIGHTS) and FUSE_NOTIFY_RESEND. */
export interface FdPass {
  /** One datagram with `fds` attached (sd_notify's FDSTORE=1); 0 or -errno. */
  sendFds(path: string, message: Buffer, fds: number[]): number;
  /** One request/reply with regfs-fd-holder (SOCK_SEQPACKET, 5 s at most); rc 0 or -errno. */
  request(path: string, message: Buffer, fds: number[]): { rc: number; message: Buffer; fds: number[] };
  /** As root: mounts a FUSE filesystem at `mountpoint` and returns its /dev/fuse descriptor, or -errno. */
  mountFuse(mountpoint: string, options: string): number;
  /**
   * Reads requests from a /dev/fuse descriptor on a thread of its own (never libuv's pool, which
   * Node joins at exit) and hands each to `onRequest`; `errno` (buf null) when it ends (ENODEV: unmounted).
   */
  startReader(fd: number, bufferSize: number, onRequest: (buf: Buffer | null, errno: number) => void): unknown;
  /** No more callbacks; the thread ends after its current read and does not keep the process alive. */
  stopReader(handle: unknown): void;
  /** Asks the kernel to queue again every request read from this connection but not answered; 0 or -errno. */
  notifyResend(fd: number): number;
}

let cached: FdPass | undefined;

export function fdPass(): FdPass {
  cached ??= requireNative<FdPass>('regfs_fd.node');
  return cached;
}
