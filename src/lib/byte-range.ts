/** Half-open byte range [start, end). */
export interface ByteRange {
  readonly start: number;
  readonly end: number;
}

export function rangeLength(r: ByteRange): number {
  return r.end - r.start;
}

/** RFC 9110 §14.1.2 form: inclusive last byte. */
export function formatRangeHeader(r: ByteRange): string {
  return `bytes=${r.start}-${r.end - 1}`;
}

export function formatRange(r: ByteRange): string {
  return `[${r.start}, ${r.end})`;
}

export interface ContentRange {
  start: number;
  end: number; // exclusive
  total: number | undefined;
}

/** Parses `bytes a-b/total` (RFC 9110 §14.4); undefined when malformed. */
export function parseContentRange(value: string | undefined): ContentRange | undefined {
  if (!value) return undefined;
  const m = /^\s*bytes\s+(\d+)-(\d+)\/(\d+|\*)\s*$/i.exec(value);
  if (!m) return undefined;
  const start = Number(m[1]);
  const last = Number(m[2]);
  const total = m[3] === '*' ? undefined : Number(m[3]);
  if (last < start || (total !== undefined && last >= total)) return undefined;
  return { start, end: last + 1, total };
}
