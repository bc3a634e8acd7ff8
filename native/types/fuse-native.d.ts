// Hand-written types for fuse-native 2.2.6 (index.js), covering what regfs uses.
declare module 'fuse-native' {
  type Cb<T = void> = T extends void ? (err: number) => void : (err: number, value?: T) => void;
  /** What fuse-native's getStatArray reads: mode, uid, gid, size, nlink, ino, rdev, blksize, blocks, atime, mtime, ctime. */
  export type FuseStat = object;
  export interface FuseOps {
    init?(cb: (err: number) => void): void;
    getattr?(path: string, cb: (err: number, stat?: FuseStat) => void): void;
    readdir?(path: string, cb: (err: number, names?: string[], stats?: FuseStat[]) => void): void;
    open?(path: string, flags: number, cb: (err: number, fd?: number) => void): void;
    release?(path: string, fd: number, cb: (err: number) => void): void;
    read?(path: string, fd: number, buf: Buffer, len: number, pos: number, cb: (bytesOrErr: number) => void): void;
    readlink?(path: string, cb: (err: number, target?: string) => void): void;
    getxattr?(path: string, name: string, position: number, cb: (err: number, value?: Buffer) => void): void;
    listxattr?(path: string, cb: (err: number, list?: string[]) => void): void;
    statfs?(path: string, cb: (err: number, statfs?: Record<string, number>) => void): void;
    access?(path: string, mode: number, cb: Cb): void;
    create?(path: string, mode: number, cb: (err: number, fd?: number) => void): void;
    rmdir?(path: string, cb: (err: number) => void): void;
  }
  export interface FuseOptions {
    timeout?: number | false | { default?: number; [op: string]: number | false | undefined };
    force?: boolean;
    mkdir?: boolean;
    allowOther?: boolean;
    kernelCache?: boolean;
    autoCache?: boolean;
    entryTimeout?: number;
    attrTimeout?: number;
    fsname?: string;
    subtype?: string;
    maxRead?: number;
    debug?: boolean;
    defaultPermissions?: boolean;
  }
  export default class Fuse {
    constructor(mnt: string, ops: FuseOps, opts?: FuseOptions);
    mount(cb: (err: Error | null) => void): void;
    unmount(cb: (err: Error | null) => void): void;
    /** regfs's build only (scripts/patch-fuse-native.mjs): the mount's /dev/fuse descriptor, -1 before mount. */
    sessionFd(): number;
    static unmount(mnt: string, cb: (err: Error | null) => void): void;
    static readonly ENOENT: number;
    static readonly EIO: number;
    [errno: string]: unknown;
  }
}
