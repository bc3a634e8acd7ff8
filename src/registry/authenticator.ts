import { AuthError } from '../lib/errors.js';
import type { Credential, CredentialProvider } from './credentials.js';
import type { Token, TokenClient } from './token-client.js';
import { parseWwwAuthenticate } from './www-authenticate.js';

/** What a registry host asked for the last time it challenged us. */
type HostScheme =
  | { kind: 'basic' }
  | { kind: 'bearer'; realm: string; service: string | undefined };

export interface AuthenticatorDeps {
  credentials: CredentialProvider;
  /** The token service client (its `fetch` is all the authenticator needs; tests hand in a counting one). */
  tokens: Pick<TokenClient, 'fetch'>;
  /** Static bearer tokens per registry host (`registries.<host>.token`). */
  staticTokens?: Readonly<Record<string, string>>;
  onTokenFetched?: (host: string) => void;
  /** A token fetch is abandoned after this long (shared by every waiter, so keep it within the retry budget). */
  tokenTimeoutMs?: number;
  now?: () => number;
}

/**
 * Decides the Authorization header for a registry request. Tokens are cached per
 * (realm, service, scope), fetched single-flight, and refreshed before they expire so that no
 * request is sent with a token about to lapse (nydus's refresh loop, done lazily).
 */
export class Authenticator {
  private readonly schemes = new Map<string, HostScheme>();
  private readonly tokens = new Map<string, Token>();
  private readonly pending = new Map<string, Promise<Token>>();
  private readonly now: () => number;

  constructor(private readonly deps: AuthenticatorDeps) {
    this.now = deps.now ?? Date.now;
  }

  /** Header to send up front, or undefined while the host has not challenged us yet. */
  async authorization(host: string, scope: string, signal: AbortSignal): Promise<string | undefined> {
    const fixed = this.deps.staticTokens?.[host];
    if (fixed) return `Bearer ${fixed}`;
    const scheme = this.schemes.get(host);
    if (!scheme) return undefined;
    if (scheme.kind === 'basic') return basicHeader(host, await this.deps.credentials.get(host));
    const cred = await this.deps.credentials.get(host);
    if (cred?.registryToken) return `Bearer ${cred.registryToken}`;
    const token = await this.token(host, scheme.realm, scheme.service, scope, signal);
    return `Bearer ${token.token}`;
  }

  /**
   * Handles a 401. `sent` is the header the failed request carried: if it was a cached token,
   * that token is dropped (revoked or expired early) and a fresh one is fetched once.
   */
  async challenged(host: string, scope: string, header: string | undefined, sent: string | undefined, signal: AbortSignal): Promise<string> {
    const challenges = parseWwwAuthenticate(header ?? '');
    const bearer = challenges.find((c) => c.scheme === 'bearer');
    const basic = challenges.find((c) => c.scheme === 'basic');
    const cred = await this.deps.credentials.get(host);
    if (bearer) {
      const realm = bearer.params['realm'];
      if (!realm) throw new AuthError(host, 'Bearer challenge without a realm');
      const service = bearer.params['service'];
      this.schemes.set(host, { kind: 'bearer', realm, service });
      const wantScope = bearer.params['scope'] ?? scope;
      const key = tokenKey(realm, service, wantScope);
      const cached = this.tokens.get(key);
      if (cached && `Bearer ${cached.token}` === sent) this.tokens.delete(key);
      if (cred?.registryToken && sent !== `Bearer ${cred.registryToken}`) return `Bearer ${cred.registryToken}`;
      const token = await this.token(host, realm, service, wantScope, signal);
      return `Bearer ${token.token}`;
    }
    if (basic) {
      this.schemes.set(host, { kind: 'basic' });
      if (!cred?.username || !cred.password) throw new AuthError(host, 'the registry requires a username and password (docker login, or registries.<host>.username/password)');
      const h = basicHeader(host, cred)!;
      if (sent === h) throw new AuthError(host, `wrong username or password for user ${JSON.stringify(cred.username)}`, {}, true);
      return h;
    }
    throw new AuthError(host, header ? `unsupported challenge ${JSON.stringify(header.split(' ')[0])}` : '401 without a WWW-Authenticate challenge');
  }

  /** The error for a 401 that came back although we authenticated as the registry asked. */
  async refused(host: string, scope: string, sent: string | undefined, url: string): Promise<AuthError> {
    const cred = await this.deps.credentials.get(host);
    const ctx = { url, status: 401 };
    if (sent?.startsWith('Basic ')) return new AuthError(host, `wrong username or password for user ${JSON.stringify(cred?.username)}`, ctx, true);
    if (!cred) return new AuthError(host, `anonymous access to ${scope} was refused; log in (docker login) or set registries.${host}.username/password`, ctx);
    return new AuthError(host, `the registry refused the token issued for ${JSON.stringify(cred.username ?? 'identity token')} (${scope})`, ctx);
  }

  private async token(host: string, realm: string, service: string | undefined, scope: string, signal: AbortSignal): Promise<Token> {
    const key = tokenKey(realm, service, scope);
    const cached = this.tokens.get(key);
    if (cached && !this.isStale(cached)) return cached;
    let p = this.pending.get(key);
    if (!p) {
      p = (async () => {
        const cred = await this.deps.credentials.get(host);
        // Not the caller's signal: one waiter giving up must not fail everyone sharing the fetch.
        const t = await this.deps.tokens.fetch({ realm, service, scope }, cred, host, AbortSignal.timeout(this.deps.tokenTimeoutMs ?? 30_000));
        this.deps.onTokenFetched?.(host);
        this.tokens.set(key, t);
        return t;
      })();
      this.pending.set(key, p);
      p.finally(() => this.pending.delete(key)).catch(() => {});
    }
    if (cached && this.now() < cached.expiresAt - 1000) return cached; // refresh in flight; old one still good
    return raceSignal(p, signal);
  }

  /** Refresh once a quarter of the lifetime is left (capped at 30 s), like docker's auth client. */
  private isStale(t: Token): boolean {
    const margin = Math.min(30_000, (t.expiresAt - t.issuedAt) / 4);
    return this.now() >= t.expiresAt - margin;
  }
}

function tokenKey(realm: string, service: string | undefined, scope: string): string {
  return `${realm}\0${service ?? ''}\0${scope}`;
}

function basicHeader(host: string, cred: Credential | undefined): string | undefined {
  if (!cred?.username || cred.password === undefined) throw new AuthError(host, 'the registry requires a username and password');
  return `Basic ${Buffer.from(`${cred.username}:${cred.password}`).toString('base64')}`;
}

function raceSignal<T>(p: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) return Promise.reject(signal.reason);
  return new Promise<T>((resolve, reject) => {
    const onAbort = (): void => reject(signal.reason);
    signal.addEventListener('abort', onAbort, { once: true });
    p.then(
      (v) => {
        signal.removeEventListener('abort', onAbort);
        resolve(v);
      },
      (e) => {
        signal.removeEventListener('abort', onAbort);
        reject(e);
      },
    );
  });
}
