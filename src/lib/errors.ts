import type { ByteRange } from './byte-range.js';

/** Context every regfs error can carry; URLs are stored already redacted. */
export interface ErrorContext {
  digest?: string;
  range?: ByteRange;
  url?: string;
  host?: string;
  status?: number;
  cause?: unknown;
}

/**
 * Every stable error code. Closed on purpose: `fs/errno.ts` maps each one to an errno in a table
 * the compiler checks, so a new code cannot reach the kernel without someone deciding its errno.
 */
export const ERROR_CODES = [
  'ERR_INVALID_REFERENCE',
  'ERR_INVALID_DIGEST',
  'ERR_MANIFEST_INVALID',
  'ERR_UNSUPPORTED_MEDIA_TYPE',
  'ERR_PLATFORM_NOT_FOUND',
  'ERR_AUTH_FAILED',
  'ERR_CREDENTIAL_HELPER',
  'ERR_NOT_FOUND',
  'ERR_HTTP_STATUS',
  'ERR_PROTOCOL',
  'ERR_RETRY_BUDGET',
  'ERR_DIGEST_MISMATCH',
  'ERR_TOO_LARGE',
  'ERR_ABORTED',
  'ERR_CONFIG',
  'ERR_LAYER_FORMAT',
  'ERR_CACHE_DIR',
  'ERR_CACHE_KEY',
  'ERR_CACHE_LOCKED',
  'ERR_CACHE_CORRUPT',
  'ERR_MOUNTPOINT',
  'ERR_NO_FUSE',
  'ERR_MOUNT',
  /** Keeping or taking over a live FUSE session across a restart (fd holder, fd store, #19). */
  'ERR_TAKEOVER',
  'ERR_DAEMON_START',
  'ERR_CONTROL',
  'ERR_UNMOUNTED',
  'ERR_TAR_FORMAT',
  'ERR_TAR_ENTRY_UNREADABLE',
  'ERR_DNS',
  'ERR_CONNECT',
  'ERR_TLS',
  'ERR_NETWORK',
  'ERR_PLAIN_HTTP_REFUSED',
  /** An access profile (#15) that is not ours to trust: garbage, too large, another image's. */
  'ERR_PROFILE',
  /** A filesystem operation refused by fs/ itself (lookup, type, write); the error carries its errno. */
  'ERR_FS',
] as const;

export type ErrorCode = (typeof ERROR_CODES)[number];

/**
 * Base of all regfs errors. `code` is stable (tests and callers switch on it, as undici's errors
 * do); the message is for humans. errno is chosen in fs/ only, from `code` (fs/errno.ts).
 */
export class RegfsError extends Error {
  readonly code: ErrorCode;
  readonly digest: string | undefined;
  readonly range: ByteRange | undefined;
  readonly url: string | undefined;
  readonly host: string | undefined;
  readonly status: number | undefined;
  /** false when trying again later may succeed (network down, budget spent). */
  readonly permanent: boolean;

  constructor(code: ErrorCode, message: string, ctx: ErrorContext = {}, permanent = true) {
    super(message, ctx.cause === undefined ? undefined : { cause: ctx.cause });
    this.name = new.target.name;
    this.code = code;
    this.digest = ctx.digest;
    this.range = ctx.range;
    this.url = ctx.url;
    this.host = ctx.host;
    this.status = ctx.status;
    this.permanent = permanent;
  }
}

export class InvalidReferenceError extends RegfsError {
  constructor(input: string, part: string, why: string) {
    super('ERR_INVALID_REFERENCE', `invalid image reference ${JSON.stringify(input)}: ${part} ${why}`);
  }
}

export class InvalidDigestError extends RegfsError {
  constructor(input: string, why: string) {
    super('ERR_INVALID_DIGEST', `invalid digest ${JSON.stringify(input)}: ${why}`);
  }
}

export class ManifestError extends RegfsError {
  constructor(message: string, ctx: ErrorContext = {}) {
    super('ERR_MANIFEST_INVALID', message, ctx);
  }
}

export class UnsupportedMediaTypeError extends RegfsError {
  constructor(mediaType: string, what: string, ctx: ErrorContext = {}) {
    super('ERR_UNSUPPORTED_MEDIA_TYPE', `unsupported ${what} media type ${JSON.stringify(mediaType)}`, ctx);
  }
}

export class PlatformNotFoundError extends RegfsError {
  constructor(wanted: string, available: string[], ctx: ErrorContext = {}) {
    super(
      'ERR_PLATFORM_NOT_FOUND',
      `no manifest for platform ${wanted} in the index (available: ${available.join(', ') || 'none'})`,
      ctx,
    );
  }
}

export class AuthError extends RegfsError {
  /**
   * True when our credentials themselves were refused (wrong password, token service said no);
   * false when the registry only refused access to this repository, which is also how many
   * registries answer for a repository that does not exist.
   */
  readonly credentialsRejected: boolean;
  constructor(host: string, why: string, ctx: ErrorContext = {}, credentialsRejected = false) {
    super('ERR_AUTH_FAILED', `authentication failed for ${host}: ${why}`, { ...ctx, host });
    this.credentialsRejected = credentialsRejected;
  }
}

export class CredentialHelperError extends RegfsError {
  constructor(helper: string, host: string, why: string) {
    super('ERR_CREDENTIAL_HELPER', `credential helper docker-credential-${helper} failed for ${host}: ${why}`, { host });
  }
}

export class NotFoundError extends RegfsError {
  constructor(what: string, ctx: ErrorContext) {
    super('ERR_NOT_FOUND', `${what} not found${ctx.url ? ` at ${ctx.url}` : ''}`, ctx);
  }
}

export class HttpStatusError extends RegfsError {
  /** From `Retry-After` (RFC 9110 §10.2.3), when the server sent one. */
  readonly retryAfterMs: number | undefined;
  constructor(status: number, ctx: ErrorContext, detail = '', retryAfterMs?: number) {
    super(
      'ERR_HTTP_STATUS',
      `HTTP ${status}${ctx.url ? ` from ${ctx.url}` : ''}${ctx.digest ? ` for ${ctx.digest}` : ''}${detail ? `: ${detail}` : ''}`,
      { ...ctx, status },
      !isTransientStatus(status),
    );
    this.retryAfterMs = retryAfterMs;
  }
}

export class ProtocolError extends RegfsError {
  constructor(message: string, ctx: ErrorContext = {}) {
    super('ERR_PROTOCOL', message, ctx, false);
  }
}

/**
 * The network failed talking to `host` (DNS, connection, TLS, reset): the message names the host
 * and the fix. `permanent` when trying again cannot help (no such host, TLS spoken to plain HTTP).
 */
export class NetworkError extends RegfsError {
  constructor(code: 'ERR_DNS' | 'ERR_CONNECT' | 'ERR_TLS' | 'ERR_NETWORK', host: string, message: string, ctx: ErrorContext = {}, permanent = false) {
    super(code, message, { ...ctx, host }, permanent);
  }
}

/** Plain HTTP to a host that is not allowed it (`--insecure`, loopback), e.g. an https registry redirecting to http://. */
export class PlainHttpRefusedError extends RegfsError {
  constructor(host: string, message: string, ctx: ErrorContext = {}) {
    super('ERR_PLAIN_HTTP_REFUSED', message, { ...ctx, host });
  }
}

export class RetryBudgetError extends RegfsError {
  constructor(attempts: number, elapsedMs: number, ctx: ErrorContext) {
    const last = ctx.cause instanceof Error ? `: ${ctx.cause.message}` : '';
    super(
      'ERR_RETRY_BUDGET',
      `gave up after ${attempts} attempts in ${(elapsedMs / 1000).toFixed(1)} s${ctx.digest ? ` reading ${ctx.digest}` : ''}${last}`,
      ctx,
      false,
    );
  }
}

export class DigestMismatchError extends RegfsError {
  constructor(expected: string, actual: string, what: string, ctx: ErrorContext = {}) {
    super('ERR_DIGEST_MISMATCH', `${what}: expected ${expected}, got ${actual}`, { ...ctx, digest: expected });
  }
}

export class TooLargeError extends RegfsError {
  constructor(what: string, limit: number, ctx: ErrorContext = {}) {
    super('ERR_TOO_LARGE', `${what} exceeds the limit of ${limit} bytes`, ctx);
  }
}

export class AbortedError extends RegfsError {
  constructor(ctx: ErrorContext = {}) {
    super('ERR_ABORTED', 'operation aborted', ctx, false);
  }
}

export class ConfigError extends RegfsError {
  constructor(message: string) {
    super('ERR_CONFIG', message);
  }
}

/** RFC 9110 statuses worth another try; everything else in 4xx/5xx is permanent. */
export function isTransientStatus(status: number): boolean {
  if (status === 501 || status === 505 || status === 511) return false;
  if (status >= 500) return true;
  return status === 408 || status === 425 || status === 429 || status === 499;
}
