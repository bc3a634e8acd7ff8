import { request, type Dispatcher } from 'undici';
import { AuthError, HttpStatusError } from '../lib/errors.js';
import { redactUrl } from '../lib/redact.js';
import { readBounded } from './bounded-body.js';
import type { Credential } from './credentials.js';
import { networkError } from './network-error.js';
import { parseRetryAfter } from './retry.js';

export interface TokenRequest {
  realm: string;
  service: string | undefined;
  scope: string | undefined;
}

export interface Token {
  token: string;
  /** ms since epoch */
  issuedAt: number;
  expiresAt: number;
}

/** Distribution token spec: a token without `expires_in` is valid for 60 s. */
const DEFAULT_EXPIRES_S = 60;
const MAX_TOKEN_BODY = 1 << 20;

export interface TokenClientDeps {
  dispatcher: Dispatcher;
  clientId?: string;
  headersTimeoutMs: number;
  bodyTimeoutMs: number;
  onFetch?: (realmHost: string, method: 'POST' | 'GET', status: number | 'error') => void;
}

/**
 * Fetches tokens the way containerd and nydus do: OAuth2 POST (distribution's oauth.md) when we
 * hold credentials, falling back to GET (token.md) when the server does not do POST, and
 * remembering per token host which one works so the second fetch goes straight there.
 */
export class TokenClient {
  private readonly methodByHost = new Map<string, 'POST' | 'GET'>();

  /** Token hosts that have answered at least once: their connection errors are worth retrying. */
  private readonly answered = new Set<string>();

  constructor(private readonly deps: TokenClientDeps) {}

  async fetch(req: TokenRequest, cred: Credential | undefined, registryHost: string, signal: AbortSignal): Promise<Token> {
    let realm: URL;
    try {
      realm = new URL(req.realm);
    } catch {
      throw new AuthError(registryHost, `token realm ${JSON.stringify(req.realm)} is not a URL`);
    }
    const canPost = !!(cred?.identityToken || (cred?.username && cred.password));
    const remembered = this.methodByHost.get(realm.host);
    if (canPost && remembered !== 'GET') {
      const res = await this.send(realm, 'POST', req, cred, signal);
      if (res.statusCode !== 404 && res.statusCode !== 405 && res.statusCode !== 400) {
        const token = await this.finish(res, realm, registryHost);
        this.methodByHost.set(realm.host, 'POST');
        return token;
      }
      await res.body.dump();
      this.methodByHost.set(realm.host, 'GET');
    }
    return this.finish(await this.send(realm, 'GET', req, cred, signal), realm, registryHost);
  }

  private async send(realm: URL, method: 'POST' | 'GET', req: TokenRequest, cred: Credential | undefined, signal: AbortSignal): Promise<Dispatcher.ResponseData> {
    const params = new URLSearchParams();
    if (req.service) params.set('service', req.service);
    if (req.scope) params.set('scope', req.scope);
    const headers: Record<string, string> = {};
    let url = new URL(realm);
    let body: string | undefined;
    if (method === 'POST') {
      params.set('client_id', this.deps.clientId ?? 'regfs');
      if (cred?.identityToken) {
        params.set('grant_type', 'refresh_token');
        params.set('refresh_token', cred.identityToken);
      } else {
        params.set('grant_type', 'password');
        params.set('username', cred!.username!);
        params.set('password', cred!.password!);
      }
      headers['content-type'] = 'application/x-www-form-urlencoded';
      body = params.toString();
    } else {
      for (const [k, v] of params) url.searchParams.append(k, v);
      if (cred?.username && cred.password) {
        headers['authorization'] = `Basic ${Buffer.from(`${cred.username}:${cred.password}`).toString('base64')}`;
      }
    }
    try {
      const res = await request(url, {
        method,
        headers,
        body,
        signal,
        dispatcher: this.deps.dispatcher,
        headersTimeout: this.deps.headersTimeoutMs,
        bodyTimeout: this.deps.bodyTimeoutMs,
      });
      this.answered.add(realm.host);
      this.deps.onFetch?.(realm.host, method, res.statusCode);
      return res;
    } catch (e) {
      this.deps.onFetch?.(realm.host, method, 'error');
      throw networkError(realm.host, redactUrl(url), e, this.answered.has(realm.host), 'token service') ?? e;
    }
  }

  private async finish(res: Dispatcher.ResponseData, realm: URL, registryHost: string): Promise<Token> {
    const url = redactUrl(realm);
    if (res.statusCode === 401 || res.statusCode === 403) {
      await res.body.dump();
      throw new AuthError(registryHost, `token service ${url} refused the credentials (HTTP ${res.statusCode})`, { url, status: res.statusCode }, true);
    }
    if (res.statusCode !== 200) {
      await res.body.dump();
      throw new HttpStatusError(res.statusCode, { url, host: realm.host }, 'token request failed', parseRetryAfter(res.headers['retry-after']));
    }
    const body = await readBounded(res, MAX_TOKEN_BODY, () => new AuthError(registryHost, `token response from ${url} is larger than ${MAX_TOKEN_BODY} bytes`));
    let json: { token?: unknown; access_token?: unknown; expires_in?: unknown; issued_at?: unknown };
    try {
      json = JSON.parse(body.toString('utf8'));
    } catch {
      throw new AuthError(registryHost, `token service ${url} returned invalid JSON`, { url });
    }
    const token = typeof json.token === 'string' && json.token ? json.token : typeof json.access_token === 'string' ? json.access_token : '';
    if (!token) throw new AuthError(registryHost, `token service ${url} returned no token`, { url });
    const expiresIn = typeof json.expires_in === 'number' && json.expires_in > 0 ? json.expires_in : DEFAULT_EXPIRES_S;
    const issued = typeof json.issued_at === 'string' ? Date.parse(json.issued_at) : NaN;
    // Trust our clock over the server's for expiry: a skewed issued_at must not make a fresh token look stale.
    const now = Date.now();
    const issuedAt = Number.isNaN(issued) || Math.abs(issued - now) > 60_000 ? now : issued;
    return { token, issuedAt, expiresAt: issuedAt + expiresIn * 1000 };
  }
}
