import { request, type Dispatcher } from 'undici';
import { throwIfAborted } from '../lib/abort.js';
import { HttpStatusError, ProtocolError, TooLargeError, type ErrorContext } from '../lib/errors.js';
import { redactUrl } from '../lib/redact.js';
import type { Authenticator } from './authenticator.js';
import { withAuthRounds } from './auth-rounds.js';
import type { RepoLocator } from './client.js';
import { isLoopbackHost } from './reference.js';
import type { Transport } from './transport.js';

export interface AuthorizedHttpDeps {
  transport: Transport;
  auth: Authenticator;
  insecureHosts: ReadonlySet<string>;
  headersTimeoutMs: number;
  bodyTimeoutMs: number;
}

export type Method = 'GET' | 'HEAD' | 'POST' | 'PUT' | 'PATCH';

/**
 * One authenticated exchange with a registry for the requests the read client does not make:
 * pushes (push scope, any method). Same credentials, token cache and 401 rounds as reads (the
 * shared Authenticator and withAuthRounds). Credentials go only to the registry's own origin:
 * an upload URL on another host gets no Authorization header. Bodies are Buffers, so a request
 * refused with 401 can be sent again. (#14)
 */
export class AuthorizedHttp {
  constructor(private readonly deps: AuthorizedHttpDeps) {}

  baseUrl(host: string): string {
    const plain = this.deps.insecureHosts.has(host) || isLoopbackHost(host);
    return `${plain ? 'http' : 'https'}://${host}`;
  }

  async send(repo: RepoLocator, method: Method, pathOrUrl: string, opts: { headers?: Record<string, string>; body?: Buffer; push?: boolean; signal: AbortSignal }): Promise<Dispatcher.ResponseData> {
    const host = repo.endpoint;
    const url = new URL(pathOrUrl, this.baseUrl(host));
    const sameOrigin = url.host === host;
    if (url.protocol === 'http:' && !isLoopbackHost(url.host) && !this.deps.insecureHosts.has(url.host)) {
      throw new ProtocolError(`refusing plain HTTP to ${url.host}; name it with --insecure`, { url: redactUrl(url.toString()) });
    }
    const scope = `repository:${repo.repository}:${opts.push ? 'pull,push' : 'pull'}`;
    const send = (auth: string | undefined): Promise<Dispatcher.ResponseData> => {
      throwIfAborted(opts.signal);
      const headers: Record<string, string> = { 'user-agent': 'regfs/0.1', ...opts.headers };
      if (auth) headers['authorization'] = auth;
      return request(url, {
        method,
        headers,
        body: opts.body,
        signal: opts.signal,
        dispatcher: this.deps.transport.dispatcherFor(url.host),
        headersTimeout: this.deps.headersTimeoutMs,
        bodyTimeout: this.deps.bodyTimeoutMs,
      });
    };
    return sameOrigin ? withAuthRounds(this.deps.auth, host, scope, url.toString(), opts.signal, send) : send(undefined);
  }
}

export function headerOf(res: Dispatcher.ResponseData, name: string): string | undefined {
  const v = res.headers[name];
  return Array.isArray(v) ? v[0] : v;
}

/** A non-success answer as a typed error, with the registry's own explanation when it gave one. */
export async function httpError(res: Dispatcher.ResponseData, ctx: ErrorContext): Promise<HttpStatusError> {
  let detail = '';
  try {
    const j = JSON.parse((await readBody(res, 64 * 1024, ctx)).toString('utf8')) as { errors?: { code?: string; message?: string }[] };
    detail = (j.errors ?? []).map((e) => [e.code, e.message].filter(Boolean).join(' ')).join('; ');
  } catch {
    if (!res.body.destroyed) res.body.destroy();
  }
  return new HttpStatusError(res.statusCode, ctx, detail);
}

export async function readBody(res: Dispatcher.ResponseData, limit: number, ctx: ErrorContext): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const c of res.body) {
    size += (c as Buffer).length;
    if (size > limit) {
      res.body.destroy();
      throw new TooLargeError('response body', limit, ctx);
    }
    chunks.push(c as Buffer);
  }
  return Buffer.concat(chunks);
}
