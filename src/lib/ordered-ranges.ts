/**
 * Half-open ranges kept in the order they were first seen, coalesced: a range that overlaps or
 * touches one already held grows that one (which keeps its place) and absorbs any others it now
 * reaches. Reads arrive mostly as a sequential run, so the last range is tried first.
 */
export class OrderedRanges {
  private readonly list: [number, number][] = [];

  constructor(private readonly max: number) {}

  get length(): number {
    return this.list.length;
  }

  /** Adds [start, end); false when it needed a new range and `max` are already held. */
  add(start: number, end: number): boolean {
    if (end <= start) return true;
    const last = this.list[this.list.length - 1];
    if (last && start <= last[1] && end >= last[0]) {
      this.grow(this.list.length - 1, start, end);
      return true;
    }
    const i = this.list.findIndex(([s, e]) => start <= e && end >= s);
    if (i >= 0) {
      this.grow(i, start, end);
      return true;
    }
    if (this.list.length >= this.max) return false;
    this.list.push([start, end]);
    return true;
  }

  ranges(): [number, number][] {
    return this.list.map(([s, e]) => [s, e]);
  }

  private grow(i: number, start: number, end: number): void {
    const r = this.list[i]!;
    r[0] = Math.min(r[0], start);
    r[1] = Math.max(r[1], end);
    // The grown range may now reach others, and each one folded in may reach more.
    for (let changed = true; changed; ) {
      changed = false;
      for (let j = this.list.length - 1; j >= 0; j--) {
        const o = this.list[j]!;
        if (o === r || o[0] > r[1] || o[1] < r[0]) continue;
        r[0] = Math.min(r[0], o[0]);
        r[1] = Math.max(r[1], o[1]);
        this.list.splice(j, 1);
        changed = true;
      }
    }
  }
}
