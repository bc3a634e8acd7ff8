/**
 * Listings of open directories, one per handle (OPENDIR → RELEASEDIR). The kernel reads a large
 * directory in many READDIR calls of a page or so each, at increasing offsets into one listing;
 * computing the listing once per handle keeps `ls` of a 10,000-entry directory linear, and keeps
 * the offsets of one handle consistent. A handle the previous process opened (before a takeover)
 * is unknown here: its first READDIR makes its listing.
 */
export class DirHandles<L> {
  private next = 1n;
  private readonly open = new Map<bigint, Promise<L>>();

  /**
   * `generation`: this process's random high bits (as for file handles), so a handle a
   * predecessor handed out never names one of ours.
   */
  constructor(
    private readonly list: (path: string) => Promise<L>,
    private readonly generation: bigint,
  ) {}

  /** A new handle; nothing is listed until the first READDIR asks. */
  opendir(): bigint {
    return this.generation | this.next++;
  }

  listing(fh: bigint, path: string): Promise<L> {
    let l = this.open.get(fh);
    if (!l) {
      l = this.list(path);
      this.open.set(fh, l);
      // A failed listing is not kept: the next READDIR tries again.
      l.catch(() => this.open.get(fh) === l && this.open.delete(fh));
    }
    return l;
  }

  releasedir(fh: bigint): void {
    this.open.delete(fh);
  }

  get size(): number {
    return this.open.size;
  }
}
