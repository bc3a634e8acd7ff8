/**
 * Fetched bytes on their way to the disk cache. Fetching waits while more than `maxBytes` are
 * pending, so a network faster than the disk cannot grow the daemon's memory (the 1 GiB stream
 * stays under its RSS bound); `flush` waits for everything (tests, shutdown).
 */
export class WriteBack {
  private pendingBytes = 0;
  private readonly waiters: (() => void)[] = [];
  private readonly pending = new Set<Promise<void>>();

  constructor(
    private readonly maxBytes: number,
    private readonly onError: (e: unknown) => void,
  ) {}

  /** Resolves once there is room for more fetched bytes. */
  async room(): Promise<void> {
    while (this.pendingBytes > this.maxBytes) await new Promise<void>((r) => this.waiters.push(r));
  }

  /** Accounts `bytes` until `write` settles; its failure is reported, never thrown. */
  track(bytes: number, write: Promise<void>): void {
    this.pendingBytes += bytes;
    const t = write
      .catch(this.onError)
      .finally(() => {
        this.pendingBytes -= bytes;
        this.pending.delete(t);
        for (const w of this.waiters.splice(0)) w();
      });
    this.pending.add(t);
  }

  get bytes(): number {
    return this.pendingBytes;
  }

  async flush(): Promise<void> {
    while (this.pending.size > 0) await Promise.all([...this.pending]);
  }
}
