import { AbortedError, HttpStatusError, RegfsError, RetryBudgetError, type ErrorContext } from '../lib/errors.js';
import { sleep } from '../lib/abort.js';

export interface RetryPolicy {
  /** Wall-clock budget for one logical request, all attempts and waits included. */
  readonly budgetMs: number;
  readonly baseDelayMs: number;
  readonly maxDelayMs: number;
}


/** "Full jitter" (AWS architecture blog): spreads a thundering herd of retries evenly. */
export function backoffDelay(attempt: number, policy: RetryPolicy, random: () => number = Math.random): number {
  const ceiling = Math.min(policy.maxDelayMs, policy.baseDelayMs * 2 ** attempt);
  return Math.floor(random() * ceiling);
}

/** RFC 9110 §10.2.3: delay-seconds or an HTTP-date. */
export function parseRetryAfter(value: string | string[] | undefined, now = Date.now()): number | undefined {
  const v = Array.isArray(value) ? value[0] : value;
  if (v === undefined || v.trim() === '') return undefined;
  if (/^\s*\d+\s*$/.test(v)) return Number(v) * 1000;
  const t = Date.parse(v);
  return Number.isNaN(t) ? undefined : Math.max(0, t - now);
}

const TRANSIENT_NET_CODES = new Set([
  'ECONNRESET', 'ECONNREFUSED', 'ECONNABORTED', 'EPIPE', 'ETIMEDOUT', 'EAI_AGAIN', 'ENETUNREACH', 'EHOSTUNREACH',
  'UND_ERR_SOCKET', 'UND_ERR_CONNECT_TIMEOUT', 'UND_ERR_HEADERS_TIMEOUT', 'UND_ERR_BODY_TIMEOUT', 'UND_ERR_CLOSED',
  'UND_ERR_RES_CONTENT_LENGTH_MISMATCH', 'UND_ERR_REQ_RETRY',
]);

export function isTransient(e: unknown): boolean {
  if (e instanceof RegfsError) return !e.permanent;
  const code = (e as { code?: unknown })?.code;
  if (typeof code === 'string' && TRANSIENT_NET_CODES.has(code)) return true;
  const cause = (e as { cause?: unknown })?.cause;
  return cause !== undefined && cause !== e && isTransient(cause);
}

export interface RetryOptions {
  policy: RetryPolicy;
  /** The caller's signal: when it fires, the result is AbortedError. */
  signal?: AbortSignal | undefined;
  /**
   * When the whole operation must be over (ms since epoch): shared by everything one logical read
   * does (mirrors, redirect re-resolution, token refresh, retries). Default: now + policy.budgetMs.
   */
  deadline?: number | undefined;
  ctx?: ErrorContext;
  onRetry?: (attempt: number, delayMs: number, error: unknown) => void;
  random?: () => number;
}

/**
 * Runs `fn` until it succeeds, fails permanently, or the deadline passes. Each attempt gets a
 * signal that fires at the deadline, so a server that never answers cannot outlive it.
 */
export async function withRetries<T>(fn: (signal: AbortSignal, attempt: number) => Promise<T>, opts: RetryOptions): Promise<T> {
  const start = Date.now();
  const deadline = opts.deadline ?? start + opts.policy.budgetMs;
  for (let attempt = 0; ; attempt++) {
    const remaining = deadline - Date.now();
    const budget = AbortSignal.timeout(Math.max(1, remaining));
    const signal = opts.signal ? AbortSignal.any([opts.signal, budget]) : budget;
    try {
      return await fn(signal, attempt);
    } catch (e) {
      if (opts.signal?.aborted) throw new AbortedError({ ...opts.ctx, cause: e });
      const outOfTime = budget.aborted || Date.now() >= deadline;
      if (!outOfTime && !isTransient(e)) throw e;
      const wait = (e instanceof HttpStatusError ? e.retryAfterMs : undefined) ?? backoffDelay(attempt, opts.policy, opts.random);
      if (outOfTime || Date.now() + wait >= deadline) {
        throw new RetryBudgetError(attempt + 1, Date.now() - start, { ...opts.ctx, ...ctxOf(e), cause: e });
      }
      opts.onRetry?.(attempt + 1, wait, e);
      await sleep(wait, opts.signal);
    }
  }
}

/**
 * When a registry stopped answering, per host: the retry budget of every read during an outage is
 * counted from the outage's start, not from the read's own start. Without it each read (and the
 * kernel's retry of a failed page) got a fresh budget, and a `dd` of several FUSE requests failed
 * only after 57 s where 30 s + 5 s was promised. A read that starts after the outage has used up
 * the budget still gets one short try (`lastTryMs`), so a registry that is back is noticed.
 */
export class OutageClock {
  private readonly since = new Map<string, number>();

  constructor(
    private readonly budgetMs: number,
    private readonly lastTryMs = 2_000,
    private readonly now: () => number = Date.now,
  ) {}

  /** An attempt at `host` failed in a way worth retrying. */
  failed(host: string): void {
    if (!this.since.has(host)) this.since.set(host, this.now());
  }

  /** `host` answered: the outage, if any, is over. */
  answered(host: string): void {
    this.since.delete(host);
  }

  /** The deadline for a read starting now at `host`. */
  deadline(host: string): number {
    const now = this.now();
    const start = this.since.get(host);
    if (start === undefined) return now + this.budgetMs;
    return Math.min(now + this.budgetMs, Math.max(start + this.budgetMs, now + this.lastTryMs));
  }
}

function ctxOf(e: unknown): ErrorContext {
  if (!(e instanceof RegfsError)) return {};
  const ctx: ErrorContext = {};
  if (e.url !== undefined) ctx.url = e.url;
  if (e.status !== undefined) ctx.status = e.status;
  if (e.host !== undefined) ctx.host = e.host;
  return ctx;
}
