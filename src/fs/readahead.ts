/**
 * Sequential read detection with a growing window, after mountpoint-s3's prefetcher: each read
 * that continues the previous one doubles the window (up to `maxWindow`); a seek resets it. The
 * next batch is requested when less than half a window is left ahead, so requests stay large
 * enough to be coalesced instead of trickling one chunk at a time.
 */
export interface ReadaheadPolicy {
  initialWindow: number;
  maxWindow: number;
}

// 24 MiB keeps ≥ 8 MiB in flight as several 4 MiB ranges in parallel (a per-connection
// bandwidth cap is beaten by parallel ranges) while bounding memory per reader.
export const DEFAULT_READAHEAD: ReadaheadPolicy = { initialWindow: 1 << 20, maxWindow: 24 << 20 };

/** How far a read may land from the previous one and still count as sequential. */
const SEQUENTIAL_SLACK = 1 << 20;

export class SequentialReadahead {
  private expected = -1;
  private window: number;
  private fetchedTo = 0;

  constructor(private readonly policy: ReadaheadPolicy = DEFAULT_READAHEAD) {
    this.window = policy.initialWindow;
  }

  /** Whether the last read continued a sequential run. */
  sequential = false;

  /** Records a read; returns the range to prefetch now, if any. */
  onRead(offset: number, length: number, size: number): { offset: number; length: number } | undefined {
    const end = offset + length;
    // The kernel issues several read-ahead requests at once and they can arrive out of order:
    // a read near the last one is still sequential (mountpoint-s3 tolerates the same jitter).
    this.sequential = !(this.expected < 0 || Math.abs(offset - this.expected) > SEQUENTIAL_SLACK);
    if (!this.sequential) {
      this.expected = end;
      this.window = this.policy.initialWindow;
      this.fetchedTo = end;
      return undefined;
    }
    this.expected = Math.max(this.expected, end);
    this.window = Math.min(this.policy.maxWindow, this.window * 2);
    if (this.fetchedTo < end) this.fetchedTo = end;
    if (this.fetchedTo - end >= this.window / 2 || this.fetchedTo >= size) return undefined;
    const to = Math.min(size, end + this.window);
    const r = { offset: this.fetchedTo, length: to - this.fetchedTo };
    this.fetchedTo = to;
    return r;
  }

  get currentWindow(): number {
    return this.window;
  }
}
