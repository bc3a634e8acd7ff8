import { requireNative } from '../lib/native.js';

/** native/fuse/fd-pass.c: descriptors over unix sockets (SCM_RIGHTS) and FUSE_NOTIFY_RESEND. */
export interface FdPass {
  /** One datagram with `fds` attached (sd_notify's FDSTORE=1); 0 or -errno. */
  sendFds(path: string, message: Buffer, fds: number[]): number;
  /** One request/reply with regfs-fd-holder (SOCK_SEQPACKET, 5 s at most); rc 0 or -errno. */
  request(path: string, message: Buffer, fds: number[]): { rc: number; message: Buffer; fds: number[] };
  /** As root: mounts a FUSE filesystem at `mountpoint` and returns its /dev/fuse descriptor, or -errno. */
  mountFuse(mountpoint: string, options: string): number;
  /** Asks the kernel to queue again every request read from this connection but not answered; 0 or -errno. */
  notifyResend(fd: number): number;
}

let cached: FdPass | undefined;

export function fdPass(): FdPass {
  cached ??= requireNative<FdPass>('regfs_fd.node');
  return cached;
}
