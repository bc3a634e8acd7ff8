import { createHash } from 'node:crypto';
import { request, type Dispatcher } from 'undici';
import { abortable, throwIfAborted } from '../lib/abort.js';
import type { ByteRange } from '../lib/byte-range.js';
import { formatRangeHeader, parseContentRange } from '../lib/byte-range.js';
import type { Digest } from '../lib/digest.js';
import { digestAlgorithm } from '../lib/digest.js';
import { DigestMismatchError, HttpStatusError, NotFoundError, PlainHttpRefusedError, ProtocolError, TooLargeError, type ErrorContext } from '../lib/errors.js';
import type { Logger } from '../lib/logger.js';
import { silentLogger } from '../lib/logger.js';
import { SingleFlight } from '../lib/single-flight.js';
import { redactUrl } from '../lib/redact.js';
import type { Authenticator } from './authenticator.js';
import { FirstGates } from './first-gate.js';
import { MANIFEST_ACCEPT, MediaType } from './media-types.js';
import { withAuthRounds } from './auth-rounds.js';
import { networkError } from './network-error.js';
import type { RegistryObserver } from './observer.js';
import { RedirectCache } from './redirect-cache.js';
import { checkRedirectTarget } from './redirect-policy.js';
import { isLoopbackHost } from './reference.js';
import { readBounded } from './bounded-body.js';
import { OutageClock, type RetryPolicy, isTransient, parseRetryAfter, withRetries } from './retry.js';
import type { Transport } from './transport.js';

/** Where a repository lives: the host we contact and the repository path. */
export interface RepoLocator {
  readonly endpoint: string;
  readonly repository: string;
}

export interface RegistryClientOptions {
  transport: Transport;
  auth: Authenticator;
  retry: RetryPolicy;
  /** Hosts spoken to over plain HTTP; loopback hosts are always allowed. */
  insecureHosts: ReadonlySet<string>;
  redirectTtlMs: number;
  headersTimeoutMs: number;
  /** Longest silence allowed inside a body before the attempt is abandoned (and resumed). */
  bodyTimeoutMs: number;
  maxManifestBytes: number;
  /** Mirrors per registry host, tried in order before it (containerd hosts.toml style). */
  mirrors?: Readonly<Record<string, readonly string[]>> | undefined;
  /** First back-off of a mirror that failed (doubles per failure, capped at 5 min). */
  mirrorBackoffMs?: number | undefined;
  observer?: RegistryObserver | undefined;
  logger?: Logger | undefined;
}

export interface FetchedManifest {
  bytes: Buffer;
  mediaType: string | undefined;
  digest: Digest;
}

const NO_REFERRERS_API_TTL_MS = 3_600_000;

/** Statuses from a cached storage URL that mean "it expired": re-resolve through the registry. */
const EXPIRED_REDIRECT = new Set([401, 403, 404, 410]);

/** A response for a range read, and the URL it came from (for errors; redacted before use). */
interface Located {
  res: Dispatcher.ResponseData;
  url: string;
}

const blobPath = (repo: RepoLocator, digest: Digest): string => `/v2/${repo.repository}/blobs/${digest}`;
const blobKey = (repo: RepoLocator, digest: Digest): string => `${repo.endpoint}/${repo.repository}@${digest}`;

/**
 * The registry HTTP client: manifests and blob ranges with auth, the first-request gate, the
 * redirect cache and retries. The only importer of undici in regfs.
 */
export class RegistryClient {
  private readonly gates = new FirstGates();
  private readonly redirects: RedirectCache;
  /** Redirect resolutions under way per blob: the target URL, or null when the registry served the bytes itself. */
  private readonly resolutions = new SingleFlight<string, string | null>();
  private readonly outages: OutageClock;
  private readonly mirrorState = new Map<string, { failures: number; until: number }>();
  /** Hosts that have answered at least once: their connection errors are worth retrying. */
  private readonly answered = new Set<string>();
  /** Hosts without the referrers API, until when (fetchReferrers). */
  private readonly noReferrersApi = new Map<string, number>();
  private readonly log: Logger;

  constructor(private readonly opts: RegistryClientOptions) {
    this.redirects = new RedirectCache({ ttlMs: opts.redirectTtlMs });
    this.outages = new OutageClock(opts.retry.budgetMs);
    this.log = opts.logger ?? silentLogger;
  }

  baseUrl(host: string): string {
    return `${this.plainAllowed(host) ? 'http' : 'https'}://${host}`;
  }

  private plainAllowed(host: string): boolean {
    return this.opts.insecureHosts.has(host) || isLoopbackHost(host);
  }

  /**
   * `mirrorNotFoundIsFinal`: for optional lookups (SOCI referrers, #14) a mirror's 404 is the
   * answer — a pull-through mirror asks upstream itself — so the origin (often rate-limited) is
   * asked only when every mirror failed.
   */
  fetchManifest(repo: RepoLocator, reference: string, signal?: AbortSignal, opts: { mirrorNotFoundIsFinal?: boolean } = {}): Promise<FetchedManifest> {
    return this.viaMirrors(repo, (r, deadline) => this.fetchManifestFrom(r, reference, signal, deadline), opts.mirrorNotFoundIsFinal);
  }

  /**
   * The OCI referrers API's listing of `subject` for one artifact type (distribution spec
   * "Listing Referrers"; SOCI v1 discovery, #14), asked like a manifest: mirrors first, where a
   * mirror's 404 is the answer (`mirrorNotFoundIsFinal`), so the origin is spared as for every
   * other lookup. Undefined when the host asked has no API: a 404, or a 200 that is not an
   * index (docker-registry 2.8 has none) — remembered per host for an hour, so discovery goes
   * straight to the referrers tag from then on instead of paying a round trip per image.
   */
  async fetchReferrers(repo: RepoLocator, subject: Digest, artifactType: string, signal?: AbortSignal): Promise<Buffer | undefined> {
    try {
      return await this.viaMirrors(repo, (r, deadline) => this.fetchReferrersFrom(r, subject, artifactType, signal, deadline), true);
    } catch (e) {
      if (e instanceof NotFoundError) return undefined;
      throw e;
    }
  }

  private async fetchReferrersFrom(repo: RepoLocator, subject: Digest, artifactType: string, signal: AbortSignal | undefined, deadline: number): Promise<Buffer> {
    const path = `/v2/${repo.repository}/referrers/${subject}?artifactType=${encodeURIComponent(artifactType)}`;
    const url = redactUrl(this.baseUrl(repo.endpoint) + path);
    const noApi = (): NotFoundError => new NotFoundError(`referrers API of ${repo.endpoint}`, { url, digest: subject, status: 404 });
    if ((this.noReferrersApi.get(repo.endpoint) ?? 0) > Date.now()) throw noApi();
    return this.retrying(repo.endpoint, { url, digest: subject }, signal, deadline, async (s) => {
      const res = await this.registryRequest(repo, 'GET', path, { accept: MediaType.ociIndex }, s, 'manifest');
      if (res.statusCode === 404 || (res.statusCode === 200 && !(header(res, 'content-type') ?? '').startsWith(MediaType.ociIndex))) {
        await res.body.dump();
        this.noReferrersApi.set(repo.endpoint, Date.now() + NO_REFERRERS_API_TTL_MS);
        throw noApi();
      }
      if (res.statusCode !== 200) throw await statusError(res, { url, digest: subject });
      return readLimited(res, this.opts.maxManifestBytes, 'referrers listing', { url, digest: subject });
    });
  }

  private async fetchManifestFrom(repo: RepoLocator, reference: string, signal: AbortSignal | undefined, deadline: number): Promise<FetchedManifest> {
    const path = `/v2/${repo.repository}/manifests/${reference}`;
    const url = redactUrl(this.baseUrl(repo.endpoint) + path);
    return this.retrying(repo.endpoint, { url }, signal, deadline, async (s) => {
      const res = await this.registryRequest(repo, 'GET', path, { accept: MANIFEST_ACCEPT }, s, 'manifest');
      if (res.statusCode === 404) {
        await res.body.dump();
        throw new NotFoundError(`manifest ${repo.endpoint}/${repo.repository}:${reference}`, { url, status: 404 });
      }
      if (res.statusCode !== 200) throw await statusError(res, { url });
      const bytes = await readLimited(res, this.opts.maxManifestBytes, `manifest ${reference}`, { url });
      const contentType = header(res, 'content-type');
      const algo = reference.startsWith('sha512:') ? 'sha512' : 'sha256';
      const digest = `${algo}:${createHash(algo).update(bytes).digest('hex')}` as Digest;
      if (reference.includes(':') && reference !== digest) {
        throw new DigestMismatchError(reference, digest, `manifest from ${repo.endpoint}/${repo.repository}`, { url });
      }
      return { bytes, mediaType: contentType, digest };
    });
  }

  /** A whole small blob (image config), verified against its digest. */
  async fetchBlob(repo: RepoLocator, digest: Digest, size: number, maxBytes: number, signal?: AbortSignal): Promise<Buffer> {
    if (size > maxBytes) throw new TooLargeError(`blob ${digest} (${size} bytes)`, maxBytes, { digest });
    const buf = Buffer.alloc(size);
    const n = await this.readAt(repo, digest, 0, buf, signal);
    if (n !== size) throw new ProtocolError(`blob ${digest} is ${n} bytes, the manifest says ${size}`, { digest });
    const algo = digestAlgorithm(digest);
    const actual = `${algo}:${createHash(algo).update(buf).digest('hex')}`;
    if (actual !== digest) throw new DigestMismatchError(digest, actual, 'blob content', { digest });
    return buf;
  }

  blobSize(repo: RepoLocator, digest: Digest, signal?: AbortSignal): Promise<number> {
    return this.viaMirrors(repo, (r, deadline) => this.blobSizeFrom(r, digest, signal, deadline));
  }

  private async blobSizeFrom(repo: RepoLocator, digest: Digest, signal: AbortSignal | undefined, deadline: number): Promise<number> {
    const path = blobPath(repo, digest);
    const url = redactUrl(this.baseUrl(repo.endpoint) + path);
    return this.retrying(repo.endpoint, { url, digest }, signal, deadline, async (s) => {
      let res = await this.registryRequest(repo, 'HEAD', path, {}, s, 'blob');
      if (isRedirect(res.statusCode)) {
        const target = this.rememberRedirect(repo, digest, res);
        await res.body.dump();
        res = await this.send(target, 'HEAD', {}, s, 'redirect');
      }
      await res.body.dump();
      if (res.statusCode === 404) throw new NotFoundError(`blob ${digest}`, { url, digest, status: 404 });
      if (res.statusCode !== 200) throw await statusError(res, { url, digest });
      const len = Number(header(res, 'content-length'));
      if (!Number.isSafeInteger(len) || len < 0) throw new ProtocolError(`HEAD ${url} gave no usable Content-Length`, { url, digest });
      return len;
    });
  }

  /**
   * Fills `into` with blob bytes from `offset`. A body cut short (reset, truncation) is resumed
   * from the last byte received within the retry budget; the result is short only at end of blob.
   * One deadline covers the whole read: mirrors, redirect re-resolution, token refresh, retries.
   */
  readAt(repo: RepoLocator, digest: Digest, offset: number, into: Uint8Array, signal?: AbortSignal): Promise<number> {
    return this.viaMirrors(repo, (r, deadline) => this.readAtFrom(r, digest, offset, into, signal, deadline));
  }

  private async readAtFrom(repo: RepoLocator, digest: Digest, offset: number, into: Uint8Array, signal: AbortSignal | undefined, deadline: number): Promise<number> {
    if (into.length === 0) return 0;
    let filled = 0;
    let eof = false;
    const range = { start: offset, end: offset + into.length };
    await this.retrying(repo.endpoint, { digest, range }, signal, deadline, async (s) => {
      while (filled < into.length && !eof) {
        const r = { start: offset + filled, end: offset + into.length };
        const progress = { n: 0, eof: false };
        try {
          await this.fetchRangeOnce(repo, digest, r, into.subarray(filled), progress, s);
        } finally {
          filled += progress.n;
          eof = progress.eof;
        }
      }
    });
    return filled;
  }

  /** One attempt at `range`: find where the bytes come from, then copy them into `dest`. */
  private async fetchRangeOnce(repo: RepoLocator, digest: Digest, range: ByteRange, dest: Uint8Array, progress: { n: number; eof: boolean }, signal: AbortSignal): Promise<void> {
    const headers = { range: formatRangeHeader(range) };
    const located = (await this.viaCachedRedirect(repo, digest, headers, signal)) ?? (await this.viaRegistry(repo, digest, headers, signal));
    return this.consumeRange(located.res, range, dest, progress, { url: redactUrl(located.url), digest, range });
  }

  /**
   * The blob's cached storage URL, if there is one that has not expired. A URL the storage refuses
   * (a pre-signed URL that expired early) is forgotten: undefined, and the caller asks the registry.
   */
  private async viaCachedRedirect(repo: RepoLocator, digest: Digest, headers: Record<string, string>, signal: AbortSignal): Promise<Located | undefined> {
    const key = blobKey(repo, digest);
    const cached = this.redirects.get(key);
    if (!cached) return undefined;
    this.opts.observer?.redirectCacheHit?.(repo.endpoint);
    const res = await this.send(cached, 'GET', headers, signal, 'redirect');
    if (!EXPIRED_REDIRECT.has(res.statusCode)) return { res, url: cached };
    await res.body.dump();
    this.redirects.delete(key);
    this.log.info({ digest, url: redactUrl(cached), status: res.statusCode }, 'cached redirect refused; re-resolving through the registry');
    return undefined;
  }

  /**
   * Through the registry, one resolution per blob at a time: readers arriving while a blob's
   * redirect is being resolved wait for it and then read from the target themselves (64 cold
   * readers of one blob cost one registry GET). Each waits no longer than its own deadline.
   */
  private async viaRegistry(repo: RepoLocator, digest: Digest, headers: Record<string, string>, signal: AbortSignal): Promise<Located> {
    let own: Located | undefined;
    let resolvedHere = false;
    const target = await abortable(
      this.resolutions.run(blobKey(repo, digest), async () => {
        resolvedHere = true;
        const located = await this.registryGet(repo, digest, headers, signal);
        if (!isRedirect(located.res.statusCode)) {
          own = located;
          return null;
        }
        await located.res.body.dump();
        return this.rememberRedirect(repo, digest, located.res);
      }),
      signal,
    );
    if (own) return own;
    if (target !== null) {
      // A reader that waited for another's resolution used a known redirect, as a cache hit does.
      if (!resolvedHere) this.opts.observer?.redirectCacheHit?.(repo.endpoint);
      return { res: await this.send(target, 'GET', headers, signal, 'redirect'), url: target };
    }
    // The registry served that reader's bytes itself: these need a request of their own.
    const located = await this.registryGet(repo, digest, headers, signal);
    if (!isRedirect(located.res.statusCode)) return located;
    await located.res.body.dump();
    const t = this.rememberRedirect(repo, digest, located.res);
    return { res: await this.send(t, 'GET', headers, signal, 'redirect'), url: t };
  }

  private async registryGet(repo: RepoLocator, digest: Digest, headers: Record<string, string>, signal: AbortSignal): Promise<Located> {
    const path = blobPath(repo, digest);
    return { res: await this.registryRequest(repo, 'GET', path, headers, signal, 'blob'), url: this.baseUrl(repo.endpoint) + path };
  }

  /** Checks where a redirect points (see redirect-policy.ts) and caches it for the blob. */
  private rememberRedirect(repo: RepoLocator, digest: Digest, res: Dispatcher.ResponseData): string {
    const location = header(res, 'location');
    const from = this.baseUrl(repo.endpoint) + blobPath(repo, digest);
    if (!location) throw new ProtocolError(`redirect ${res.statusCode} without Location for ${digest}`, { digest, url: redactUrl(from) });
    const target = new URL(location, from).toString();
    checkRedirectTarget(from, target, (h) => this.plainAllowed(h), digest);
    this.redirects.set(blobKey(repo, digest), target);
    return target;
  }

  /** Copies the useful part of a 206 (or a 200 that ignored Range) into `dest`. */
  private async consumeRange(res: Dispatcher.ResponseData, range: ByteRange, dest: Uint8Array, progress: { n: number; eof: boolean }, ctx: ErrorContext): Promise<void> {
    let skip: number;
    let want: number;
    if (res.statusCode === 206) {
      const cr = parseContentRange(header(res, 'content-range'));
      if (!cr || cr.start !== range.start || cr.end > range.end) {
        await res.body.dump();
        throw new ProtocolError(`bad Content-Range ${JSON.stringify(header(res, 'content-range'))} for ${formatRangeHeader(range)}`, ctx);
      }
      skip = 0;
      want = cr.end - cr.start;
      if (cr.total !== undefined && cr.end >= cr.total) progress.eof = want < dest.length;
    } else if (res.statusCode === 200) {
      // The server ignored Range (allowed by RFC 9110 §14.2): skip to our offset in the full body.
      const total = Number(header(res, 'content-length'));
      skip = range.start;
      want = Number.isSafeInteger(total) ? Math.max(0, Math.min(dest.length, total - range.start)) : dest.length;
      if (Number.isSafeInteger(total) && total <= range.end) progress.eof = true;
    } else if (res.statusCode === 416) {
      await res.body.dump();
      progress.eof = true;
      return;
    } else if (res.statusCode === 404) {
      await res.body.dump();
      throw new NotFoundError(`blob ${ctx.digest}`, { ...ctx, status: 404 });
    } else {
      throw await statusError(res, ctx);
    }
    const body = res.body;
    let pos = 0; // bytes of the body seen
    try {
      for await (const chunk of body) {
        const c = chunk as Buffer;
        const from = Math.max(0, skip - pos);
        pos += c.length;
        if (from >= c.length) continue;
        const n = Math.min(c.length - from, want - progress.n);
        dest.set(c.subarray(from, from + n), progress.n);
        progress.n += n;
        this.opts.observer?.bytesFetched?.(n);
        if (progress.n >= want) break;
      }
    } finally {
      if (!body.destroyed) body.destroy();
    }
    if (progress.n < want) {
      // The body ended early without a socket error (truncation): resume from here.
      throw new ProtocolError(`body ended after ${progress.n} of ${want} bytes`, ctx);
    }
    if (res.statusCode === 200 && !progress.eof && want < dest.length) progress.eof = true;
  }

  /**
   * One authenticated exchange with the registry, gated by the first-request gate per
   * host/repository. A 401 runs the challenge once; a second 401 is an auth failure.
   */
  private async registryRequest(
    repo: RepoLocator,
    method: 'GET' | 'HEAD',
    path: string,
    headers: Record<string, string>,
    signal: AbortSignal,
    kind: 'manifest' | 'blob',
  ): Promise<Dispatcher.ResponseData> {
    const host = repo.endpoint;
    const scope = `repository:${repo.repository}:pull`;
    const url = this.baseUrl(host) + path;
    return this.gates.get(`${host}/${repo.repository}`).run(() =>
      withAuthRounds(this.opts.auth, host, scope, url, signal, (auth) => this.send(url, method, auth ? { ...headers, authorization: auth } : headers, signal, kind)),
    );
  }

  private async send(url: string, method: 'GET' | 'HEAD', headers: Record<string, string>, signal: AbortSignal, kind: 'manifest' | 'blob' | 'redirect'): Promise<Dispatcher.ResponseData> {
    throwIfAborted(signal);
    const u = new URL(url);
    if (u.protocol === 'http:' && !this.plainAllowed(u.host)) {
      throw new PlainHttpRefusedError(u.host, `refusing plain HTTP to ${u.host}; name it with --insecure ${u.host}`, { url: redactUrl(url) });
    }
    try {
      const res = await request(u, {
        method,
        headers: { 'user-agent': 'regfs/0.1', ...headers },
        signal,
        dispatcher: this.opts.transport.dispatcherFor(u.host),
        headersTimeout: this.opts.headersTimeoutMs,
        bodyTimeout: this.opts.bodyTimeoutMs,
      });
      this.answered.add(u.host);
      this.opts.observer?.request?.(u.host, kind, res.statusCode);
      return res;
    } catch (e) {
      this.opts.observer?.request?.(u.host, kind, 'error');
      throw networkError(u.host, redactUrl(url), e, this.answered.has(u.host)) ?? e;
    }
  }

  /**
   * Tries the registry's mirrors in order, then the registry itself, all within one deadline for
   * the whole operation (counted from the start of an outage, if one is under way: OutageClock).
   * A mirror that fails (not a 404: that only means it lacks the content) is skipped for a back-off
   * that doubles per failure; mirrors get at most 3 s each so a dead one costs seconds, not the budget.
   */
  private async viaMirrors<T>(repo: RepoLocator, fn: (r: RepoLocator, deadline: number) => Promise<T>, notFoundIsFinal = false): Promise<T> {
    const deadline = this.outages.deadline(repo.endpoint);
    const mirrors = this.opts.mirrors?.[repo.endpoint];
    if (!mirrors?.length) return fn(repo, deadline);
    const now = Date.now();
    for (const mirror of mirrors) {
      const state = this.mirrorState.get(mirror);
      if (state && now < state.until) continue;
      try {
        const v = await fn({ endpoint: mirror, repository: repo.repository }, Math.min(deadline, Date.now() + 3000));
        if (state) {
          this.mirrorState.delete(mirror);
          this.log.info({ mirror, registry: repo.endpoint }, 'mirror is answering again');
        }
        return v;
      } catch (e) {
        if ((e as { code?: string }).code === 'ERR_ABORTED') throw e;
        if (notFoundIsFinal && (e as { code?: string }).code === 'ERR_NOT_FOUND') throw e;
        if ((e as { code?: string }).code !== 'ERR_NOT_FOUND') {
          const failures = (state?.failures ?? 0) + 1;
          const backoff = Math.min(300_000, (this.opts.mirrorBackoffMs ?? 5000) * 2 ** (failures - 1));
          this.mirrorState.set(mirror, { failures, until: Date.now() + backoff });
          this.log.warn({ mirror, registry: repo.endpoint, err: (e as Error).message, backoffMs: backoff }, 'mirror failed; using the next one');
        }
      }
    }
    return fn(repo, deadline);
  }

  /** Retries `fn` until `deadline`, and keeps the host's outage clock: transient failures start one, any success ends it. */
  private retrying<T>(host: string, ctx: ErrorContext, signal: AbortSignal | undefined, deadline: number, fn: (s: AbortSignal) => Promise<T>): Promise<T> {
    return withRetries(
      async (s) => {
        try {
          const v = await fn(s);
          this.outages.answered(host);
          return v;
        } catch (e) {
          if (!signal?.aborted && isTransient(e)) this.outages.failed(host);
          throw e;
        }
      },
      {
        policy: this.opts.retry,
        deadline,
        signal,
        ctx,
        onRetry: (attempt, delayMs, error) => {
          this.opts.observer?.retry?.(host, attempt, delayMs, error);
          this.log.debug({ host, digest: ctx.digest, url: ctx.url, attempt, delayMs, err: (error as Error).message }, 'retrying');
        },
      },
    );
  }
}

function isRedirect(status: number): boolean {
  return status === 301 || status === 302 || status === 303 || status === 307 || status === 308;
}

function header(res: Dispatcher.ResponseData, name: string): string | undefined {
  const v = res.headers[name];
  return Array.isArray(v) ? v[0] : v;
}

async function statusError(res: Dispatcher.ResponseData, ctx: ErrorContext): Promise<HttpStatusError> {
  // Registries explain refusals in a small JSON body (distribution spec "Error Codes").
  let detail = '';
  try {
    const text = (await readLimited(res, 64 * 1024, 'error body', ctx)).toString('utf8');
    const j = JSON.parse(text) as { errors?: { code?: string; message?: string }[] };
    detail = (j.errors ?? []).map((e) => [e.code, e.message].filter(Boolean).join(' ')).join('; ');
  } catch {
    if (!res.body.destroyed) res.body.destroy();
  }
  return new HttpStatusError(res.statusCode, ctx, detail, parseRetryAfter(res.headers['retry-after']));
}

function readLimited(res: Dispatcher.ResponseData, limit: number, what: string, ctx: ErrorContext): Promise<Buffer> {
  return readBounded(res, limit, () => new TooLargeError(what, limit, ctx));
}
