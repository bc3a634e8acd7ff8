import { createHash } from 'node:crypto';
import { request, type Dispatcher } from 'undici';
import { throwIfAborted } from '../lib/abort.js';
import type { ByteRange } from '../lib/byte-range.js';
import { formatRangeHeader, parseContentRange } from '../lib/byte-range.js';
import type { Digest } from '../lib/digest.js';
import { digestAlgorithm } from '../lib/digest.js';
import { DigestMismatchError, HttpStatusError, NotFoundError, ProtocolError, TooLargeError, type ErrorContext } from '../lib/errors.js';
import type { Logger } from '../lib/logger.js';
import { silentLogger } from '../lib/logger.js';
import { redactUrl } from '../lib/redact.js';
import type { Authenticator } from './authenticator.js';
import { FirstGates } from './first-gate.js';
import { MANIFEST_ACCEPT } from './media-types.js';
import type { RegistryObserver } from './observer.js';
import { RedirectCache } from './redirect-cache.js';
import { isLoopbackHost } from './reference.js';
import { readBounded } from './bounded-body.js';
import { type RetryPolicy, parseRetryAfter, withRetries } from './retry.js';
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

/** Statuses from a cached storage URL that mean "it expired": re-resolve through the registry. */
const EXPIRED_REDIRECT = new Set([401, 403, 404, 410]);

/**
 * The registry HTTP client: manifests and blob ranges with auth, the first-request gate, the
 * redirect cache and retries. The only importer of undici in regfs.
 */
export class RegistryClient {
  private readonly gates = new FirstGates();
  private readonly redirects: RedirectCache;
  private readonly resolving = new Map<string, Promise<void>>();
  private readonly mirrorState = new Map<string, { failures: number; until: number }>();
  private readonly log: Logger;

  constructor(private readonly opts: RegistryClientOptions) {
    this.redirects = new RedirectCache({ ttlMs: opts.redirectTtlMs });
    this.log = opts.logger ?? silentLogger;
  }

  baseUrl(host: string): string {
    const plain = this.opts.insecureHosts.has(host) || isLoopbackHost(host);
    return `${plain ? 'http' : 'https'}://${host}`;
  }

  fetchManifest(repo: RepoLocator, reference: string, signal?: AbortSignal): Promise<FetchedManifest> {
    return this.viaMirrors(repo, (r, budget) => this.fetchManifestFrom(r, reference, signal, budget));
  }

  private async fetchManifestFrom(repo: RepoLocator, reference: string, signal: AbortSignal | undefined, budgetMs?: number): Promise<FetchedManifest> {
    const path = `/v2/${repo.repository}/manifests/${reference}`;
    const url = redactUrl(this.baseUrl(repo.endpoint) + path);
    return this.retrying(repo.endpoint, { url }, signal, budgetMs, async (s) => {
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
    return this.viaMirrors(repo, (r, budget) => this.blobSizeFrom(r, digest, signal, budget));
  }

  private async blobSizeFrom(repo: RepoLocator, digest: Digest, signal: AbortSignal | undefined, budgetMs?: number): Promise<number> {
    const path = `/v2/${repo.repository}/blobs/${digest}`;
    const url = redactUrl(this.baseUrl(repo.endpoint) + path);
    return this.retrying(repo.endpoint, { url, digest }, signal, budgetMs, async (s) => {
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
   */
  readAt(repo: RepoLocator, digest: Digest, offset: number, into: Uint8Array, signal?: AbortSignal): Promise<number> {
    return this.viaMirrors(repo, (r, budget) => this.readAtFrom(r, digest, offset, into, signal, budget));
  }

  private async readAtFrom(repo: RepoLocator, digest: Digest, offset: number, into: Uint8Array, signal: AbortSignal | undefined, budgetMs?: number): Promise<number> {
    if (into.length === 0) return 0;
    let filled = 0;
    let eof = false;
    const range = { start: offset, end: offset + into.length };
    await this.retrying(repo.endpoint, { digest, range }, signal, budgetMs, async (s) => {
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

  private async fetchRangeOnce(
    repo: RepoLocator,
    digest: Digest,
    range: ByteRange,
    dest: Uint8Array,
    progress: { n: number; eof: boolean },
    signal: AbortSignal,
  ): Promise<void> {
    const key = `${repo.endpoint}/${repo.repository}@${digest}`;
    const headers = { range: formatRangeHeader(range) };
    const cached = this.redirects.get(key);
    if (cached) {
      this.opts.observer?.redirectCacheHit?.(repo.endpoint);
      const res = await this.send(cached, 'GET', headers, signal, 'redirect');
      if (!EXPIRED_REDIRECT.has(res.statusCode)) return this.consumeRange(res, range, dest, progress, { url: redactUrl(cached), digest, range });
      // A pre-signed URL that expired early: forget it and ask the registry once more.
      await res.body.dump();
      this.redirects.delete(key);
      this.log.info({ digest, url: redactUrl(cached), status: res.statusCode }, 'cached redirect refused; re-resolving through the registry');
    }
    // Readers of a blob whose redirect is being resolved wait for it instead of each asking the
    // registry: 64 cold readers of one blob cost one registry GET.
    const resolving = this.resolving.get(key);
    if (!cached && resolving) {
      await resolving;
      if (this.redirects.get(key)) return this.fetchRangeOnce(repo, digest, range, dest, progress, signal);
    }
    let done!: () => void;
    const mine = new Promise<void>((r) => (done = r));
    if (!this.resolving.has(key)) this.resolving.set(key, mine);
    const path = `/v2/${repo.repository}/blobs/${digest}`;
    let res: Dispatcher.ResponseData;
    let url = redactUrl(this.baseUrl(repo.endpoint) + path);
    try {
      res = await this.registryRequest(repo, 'GET', path, headers, signal, 'blob');
      if (isRedirect(res.statusCode)) {
        const target = this.rememberRedirect(repo, digest, res);
        await res.body.dump();
        url = redactUrl(target);
        done();
        res = await this.send(target, 'GET', headers, signal, 'redirect');
      }
    } finally {
      if (this.resolving.get(key) === mine) this.resolving.delete(key);
      done();
    }
    return this.consumeRange(res, range, dest, progress, { url, digest, range });
  }

  private rememberRedirect(repo: RepoLocator, digest: Digest, res: Dispatcher.ResponseData): string {
    const location = header(res, 'location');
    const base = this.baseUrl(repo.endpoint);
    if (!location) throw new ProtocolError(`redirect ${res.statusCode} without Location for ${digest}`, { digest, url: redactUrl(base) });
    const target = new URL(location, `${base}/v2/${repo.repository}/blobs/${digest}`).toString();
    this.redirects.set(`${repo.endpoint}/${repo.repository}@${digest}`, target);
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
    return this.gates.get(`${host}/${repo.repository}`).run(async () => {
      let auth = await this.opts.auth.authorization(host, scope, signal);
      for (let round = 0; ; round++) {
        const res = await this.send(url, method, auth ? { ...headers, authorization: auth } : headers, signal, kind);
        if (res.statusCode !== 401) return res;
        await res.body.dump();
        if (round >= 1) throw await this.opts.auth.refused(host, scope, auth, redactUrl(url));
        auth = await this.opts.auth.challenged(host, scope, header(res, 'www-authenticate'), auth, signal);
      }
    });
  }

  private async send(url: string, method: 'GET' | 'HEAD', headers: Record<string, string>, signal: AbortSignal, kind: 'manifest' | 'blob' | 'redirect'): Promise<Dispatcher.ResponseData> {
    throwIfAborted(signal);
    const u = new URL(url);
    if (u.protocol === 'http:' && !isLoopbackHost(u.host) && !this.opts.insecureHosts.has(u.host) && kind !== 'redirect') {
      throw new ProtocolError(`refusing plain HTTP to ${u.host}; name it with --insecure`, { url: redactUrl(url) });
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
      this.opts.observer?.request?.(u.host, kind, res.statusCode);
      return res;
    } catch (e) {
      this.opts.observer?.request?.(u.host, kind, 'error');
      throw e;
    }
  }

  /**
   * Tries the registry's mirrors in order, then the registry itself. A mirror that fails (not a
   * 404: that only means it lacks the content) is skipped for a back-off that doubles per
   * failure; mirrors get a short retry budget so a dead one costs seconds, not the whole budget.
   */
  private async viaMirrors<T>(repo: RepoLocator, fn: (r: RepoLocator, budgetMs?: number) => Promise<T>): Promise<T> {
    const mirrors = this.opts.mirrors?.[repo.endpoint];
    if (!mirrors?.length) return fn(repo);
    const now = Date.now();
    for (const mirror of mirrors) {
      const state = this.mirrorState.get(mirror);
      if (state && now < state.until) continue;
      try {
        const v = await fn({ endpoint: mirror, repository: repo.repository }, Math.min(3000, this.opts.retry.budgetMs));
        if (state) {
          this.mirrorState.delete(mirror);
          this.log.info({ mirror, registry: repo.endpoint }, 'mirror is answering again');
        }
        return v;
      } catch (e) {
        if ((e as { code?: string }).code === 'ERR_ABORTED') throw e;
        if ((e as { code?: string }).code !== 'ERR_NOT_FOUND') {
          const failures = (state?.failures ?? 0) + 1;
          const backoff = Math.min(300_000, (this.opts.mirrorBackoffMs ?? 5000) * 2 ** (failures - 1));
          this.mirrorState.set(mirror, { failures, until: Date.now() + backoff });
          this.log.warn({ mirror, registry: repo.endpoint, err: (e as Error).message, backoffMs: backoff }, 'mirror failed; using the next one');
        }
      }
    }
    return fn(repo);
  }

  private retrying<T>(host: string, ctx: ErrorContext, signal: AbortSignal | undefined, budgetMs: number | undefined, fn: (s: AbortSignal) => Promise<T>): Promise<T> {
    return withRetries(fn, {
      policy: budgetMs === undefined ? this.opts.retry : { ...this.opts.retry, budgetMs },
      signal,
      ctx,
      onRetry: (attempt, delayMs, error) => {
        this.opts.observer?.retry?.(host, attempt, delayMs, error);
        this.log.debug({ host, digest: ctx.digest, url: ctx.url, attempt, delayMs, err: (error as Error).message }, 'retrying');
      },
    });
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
