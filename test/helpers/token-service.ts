import { execFile } from 'node:child_process';
import { createPrivateKey, createSign, randomUUID, X509Certificate } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import { join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

export interface TokenServiceOptions {
  workDir: string;
  service: string;
  issuer: string;
  /** user → password; empty means anonymous pulls are granted. */
  users?: Record<string, string>;
  expiresIn?: number;
  /** How to answer the OAuth2 POST form: issue tokens, or refuse as a GET-only server would. */
  post?: 'ok' | 404 | 405;
}

export interface TokenService {
  realm: string;
  certPath: string;
  requests: { method: string; scope: string | null; status: number }[];
  /** Next answers, consumed in order before normal behaviour (e.g. 'garbage', 503, 'hang'). */
  faults: (number | 'garbage' | 'hang')[];
  setExpiresIn(s: number): void;
  close(): Promise<void>;
}

function b64url(b: Buffer | string): string {
  return Buffer.from(b).toString('base64url');
}

/**
 * A small Docker token service (distribution docs/spec/auth/token.md + oauth.md): RS256 JWTs
 * whose header carries the signing certificate in `x5c`, which docker-registry 2.8 checks
 * against its `rootcertbundle`.
 */
export async function startTokenService(opts: TokenServiceOptions): Promise<TokenService> {
  const keyPath = join(opts.workDir, 'token.key');
  const certPath = join(opts.workDir, 'token.crt');
  await run('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', keyPath, '-out', certPath, '-days', '2', '-subj', '/CN=regfs-test-token']);
  const key = createPrivateKey(await readFile(keyPath));
  const certDer = new X509Certificate(await readFile(certPath)).raw;
  let expiresIn = opts.expiresIn ?? 300;
  const requests: TokenService['requests'] = [];
  const faults: TokenService['faults'] = [];

  const sign = (sub: string, scope: string | null): string => {
    const now = Math.floor(Date.now() / 1000);
    const access = (scope ?? '')
      .split(' ')
      .filter(Boolean)
      .map((s) => {
        const [type, name, actions] = s.split(':');
        return { type, name, actions: (actions ?? '').split(',').filter(Boolean) };
      });
    const header = { alg: 'RS256', typ: 'JWT', x5c: [certDer.toString('base64')] };
    const claims = { iss: opts.issuer, sub, aud: opts.service, exp: now + expiresIn, nbf: now - 10, iat: now, jti: randomUUID(), access };
    const input = `${b64url(JSON.stringify(header))}.${b64url(JSON.stringify(claims))}`;
    const sig = createSign('RSA-SHA256').update(input).sign(key);
    return `${input}.${b64url(sig)}`;
  };

  const body = (req: IncomingMessage): Promise<string> =>
    new Promise((resolve) => {
      let s = '';
      req.on('data', (d: Buffer) => (s += d.toString()));
      req.on('end', () => resolve(s));
    });

  const server: Server = createServer(async (req, res) => {
    const url = new URL(req.url ?? '/', 'http://x');
    let params = url.searchParams;
    if (req.method === 'POST') params = new URLSearchParams(await body(req));
    const scope = params.get('scope');
    const answer = (status: number, text: string): void => {
      requests.push({ method: req.method ?? '', scope, status });
      res.writeHead(status, { 'content-type': 'application/json' }).end(text);
    };
    const fault = faults.shift();
    if (fault === 'hang') return void requests.push({ method: req.method ?? '', scope, status: 0 });
    if (fault === 'garbage') return answer(200, '{"token": nope');
    if (typeof fault === 'number') return answer(fault, '{}');
    if (req.method === 'POST' && opts.post !== undefined && opts.post !== 'ok') return answer(opts.post, '{"error":"unsupported"}');
    let user = 'anonymous';
    if (req.method === 'POST') {
      const u = params.get('username');
      if (u !== null) {
        if (opts.users?.[u] !== params.get('password')) return answer(401, '{"error":"invalid_grant"}');
        user = u;
      }
    } else {
      const h = req.headers.authorization;
      if (h?.startsWith('Basic ')) {
        const [u, p] = Buffer.from(h.slice(6), 'base64').toString().split(':');
        if (!u || opts.users?.[u] !== p) return answer(401, '{"error":"unauthorized"}');
        user = u;
      }
    }
    if (opts.users && Object.keys(opts.users).length > 0 && user === 'anonymous') return answer(401, '{"error":"unauthorized"}');
    const token = sign(user, scope);
    const field = req.method === 'POST' ? 'access_token' : 'token';
    answer(200, JSON.stringify({ [field]: token, expires_in: expiresIn, issued_at: new Date().toISOString() }));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as { port: number }).port;
  return {
    realm: `http://127.0.0.1:${port}/token`,
    certPath,
    requests,
    faults,
    setExpiresIn: (s) => (expiresIn = s),
    close: () => new Promise((r) => { server.closeAllConnections(); server.close(() => r()); }),
  };
}
