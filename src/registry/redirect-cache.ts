/**
 * Remembers where a registry redirected a blob (pre-signed storage URLs), like stargz-snapshotter's
 * resolver and nydus's redirect cache, so later ranges skip the registry round trip.
 */
export interface RedirectCacheOptions {
  /** Upper bound on how long a URL is trusted, whatever it says about itself. */
  ttlMs: number;
  /** Stop using a URL this long before its own expiry (clock skew, request time). */
  marginMs?: number;
  maxEntries?: number;
  now?: () => number;
}

interface Entry {
  url: string;
  expiresAt: number;
}

export class RedirectCache {
  private readonly entries = new Map<string, Entry>();
  private readonly ttlMs: number;
  private readonly marginMs: number;
  private readonly maxEntries: number;
  private readonly now: () => number;

  constructor(opts: RedirectCacheOptions) {
    this.ttlMs = opts.ttlMs;
    this.marginMs = opts.marginMs ?? 30_000;
    this.maxEntries = opts.maxEntries ?? 10_000;
    this.now = opts.now ?? Date.now;
  }

  get(key: string): string | undefined {
    const e = this.entries.get(key);
    if (!e) return undefined;
    if (this.now() >= e.expiresAt) {
      this.entries.delete(key);
      return undefined;
    }
    return e.url;
  }

  set(key: string, url: string): void {
    const now = this.now();
    const own = urlExpiry(url);
    const expiresAt = Math.min(now + this.ttlMs, own === undefined ? Infinity : own - this.marginMs);
    if (expiresAt <= now) return;
    this.entries.delete(key);
    this.entries.set(key, { url, expiresAt });
    // Map keeps insertion order: the first key is the oldest.
    while (this.entries.size > this.maxEntries) this.entries.delete(this.entries.keys().next().value!);
  }

  delete(key: string): void {
    this.entries.delete(key);
  }

  get size(): number {
    return this.entries.size;
  }
}

/** Expiry (ms since epoch) that a pre-signed URL states about itself: S3 v4, S3 v2/GCS/CloudFront, Azure SAS. */
export function urlExpiry(url: string): number | undefined {
  let q: URLSearchParams;
  try {
    q = new URL(url).searchParams;
  } catch {
    return undefined;
  }
  const amzDate = q.get('X-Amz-Date');
  const amzExpires = q.get('X-Amz-Expires');
  if (amzDate && amzExpires && /^\d+$/.test(amzExpires)) {
    const m = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$/.exec(amzDate);
    if (m) return Date.UTC(+m[1]!, +m[2]! - 1, +m[3]!, +m[4]!, +m[5]!, +m[6]!) + Number(amzExpires) * 1000;
  }
  const expires = q.get('Expires') ?? q.get('X-Goog-Expires-At');
  if (expires && /^\d+$/.test(expires)) return Number(expires) * 1000;
  const se = q.get('se');
  if (se) {
    const t = Date.parse(se);
    if (!Number.isNaN(t)) return t;
  }
  return undefined;
}
