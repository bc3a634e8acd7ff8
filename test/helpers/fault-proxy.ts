import { createServer, request as httpRequest, type IncomingHttpHeaders, type Server } from 'node:http';
import type { Socket } from 'node:net';

export type Fault =
  | { kind: 'status'; status: number; headers?: Record<string, string> }
  /** Forward, then destroy the socket after this many body bytes. */
  | { kind: 'reset'; afterBytes: number }
  /** Forward with a chunked body that ends cleanly, early. */
  | { kind: 'truncate'; afterBytes: number }
  | { kind: 'wrong-content-range' }
  | { kind: 'ignore-range' }
  | { kind: 'drip'; intervalMs: number }
  | { kind: 'hang' }
  /** Answer with this instead of forwarding (hostile manifests). */
  | { kind: 'respond'; status: number; body: string | Buffer; headers?: Record<string, string> }
  /** Forward, and append this to a redirect's Location (a signed URL's query). */
  | { kind: 'location-query'; query: string };

export interface ProxyRequest {
  method: string;
  path: string;
  headers: IncomingHttpHeaders;
  fault: Fault['kind'] | undefined;
}

export type RequestMatch = RegExp | ((path: string, headers: IncomingHttpHeaders) => boolean);

export interface FaultProxy {
  url: string;
  host: string;
  port: number;
  requests: ProxyRequest[];
  /**
   * Faults for requests that match (a path pattern, or a test of path and headers — e.g. one
   * byte range, so a fault cannot be spent on a background request), consumed in order.
   */
  inject(match: RequestMatch, ...faults: Fault[]): void;
  /** Caps every response body at this rate per connection (0 = no cap). */
  throttle(bytesPerSec: number): void;
  /** Injects a random fault from `faults` into each matching request with probability `p`. */
  chaos(match: RegExp, p: number, faults: Fault[]): void;
  clearFaults(): void;
  count(match: RegExp, method?: string): number;
  /** Most connections that were answering a request at the same time. */
  readonly peakConcurrent: number;
  close(): Promise<void>;
}

/** A reverse proxy in front of a real registry that counts requests and injects faults. */
export async function startFaultProxy(target: string, port = 0): Promise<FaultProxy> {
  const t = new URL(target);
  const requests: ProxyRequest[] = [];
  let rules: { match: RequestMatch; faults: Fault[] }[] = [];
  let rate = 0;
  let active = 0;
  const busy = new Map<Socket, number>();
  let peak = 0;
  let chaos: { match: RegExp; p: number; faults: Fault[] } | undefined;
  const sockets = new Set<Socket>();
  const server: Server = createServer((req, res) => {
    const path = req.url ?? '/';
    const rule = rules.find((r) => (r.match instanceof RegExp ? r.match.test(path) : r.match(path, req.headers)) && r.faults.length > 0);
    let fault = rule?.faults.shift();
    if (!fault && chaos && chaos.match.test(path) && Math.random() < chaos.p) fault = chaos.faults[Math.floor(Math.random() * chaos.faults.length)];
    requests.push({ method: req.method ?? '', path, headers: req.headers, fault: fault?.kind });
    // Counted per connection: a keep-alive client may send its next request on a socket before
    // the previous response's 'close' event has run here; that is one connection in use, not two.
    const sock = req.socket;
    const before = busy.get(sock) ?? 0;
    busy.set(sock, before + 1);
    if (before === 0) peak = Math.max(peak, ++active);
    res.once('close', () => {
      const left = (busy.get(sock) ?? 1) - 1;
      if (left > 0) busy.set(sock, left);
      else {
        busy.delete(sock);
        active--;
      }
    });
    if (fault?.kind === 'hang') return;
    if (fault?.kind === 'respond') return void res.writeHead(fault.status, { 'content-length': String(Buffer.byteLength(fault.body)), ...(fault.headers ?? {}) }).end(fault.body);
    if (fault?.kind === 'status') return void res.writeHead(fault.status, fault.headers ?? {}).end(`{"errors":[{"code":"INJECTED","message":"fault ${fault.status}"}]}`);
    const headers = { ...req.headers, host: t.host };
    if (fault?.kind === 'ignore-range') delete headers.range;
    const up = httpRequest({ host: t.hostname, port: t.port, method: req.method, path, headers }, (ur) => {
      const outHeaders = { ...ur.headers };
      if (fault?.kind === 'wrong-content-range' && outHeaders['content-range']) {
        outHeaders['content-range'] = outHeaders['content-range'].replace(/bytes (\d+)-/, (_m, a: string) => `bytes ${Number(a) + 1}-`);
      }
      if (fault?.kind === 'truncate' || fault?.kind === 'drip') delete outHeaders['content-length'];
      if (fault?.kind === 'location-query' && outHeaders.location) outHeaders.location += (outHeaders.location.includes('?') ? '&' : '?') + fault.query;
      res.writeHead(ur.statusCode ?? 502, outHeaders);
      if (fault?.kind === 'drip') {
        ur.pause();
        const buffered: Buffer[] = [];
        ur.on('data', (d: Buffer) => buffered.push(d));
        ur.resume();
        const timer = setInterval(() => {
          const b = buffered[0];
          if (!b) return;
          res.write(b.subarray(0, 1));
          if (b.length > 1) buffered[0] = b.subarray(1);
          else buffered.shift();
        }, fault.intervalMs);
        res.on('close', () => clearInterval(timer));
        return;
      }
      if (fault?.kind === 'reset' || fault?.kind === 'truncate') {
        let sent = 0;
        const limit = fault.afterBytes;
        ur.on('data', (d: Buffer) => {
          if (sent >= limit) return;
          const part = d.subarray(0, limit - sent);
          sent += part.length;
          res.write(part);
          if (sent >= limit) {
            ur.destroy();
            if (fault.kind === 'reset') res.socket?.destroy();
            else res.end();
          }
        });
        ur.on('end', () => res.end());
        return;
      }
      if (rate > 0) {
        // Pace the body: pause upstream whenever we are ahead of the allowed rate (the rate in
        // force when the response started, even if it is changed meanwhile).
        const bodyRate = rate;
        const started = Date.now();
        let sent = 0;
        ur.on('data', (d: Buffer) => {
          res.write(d);
          sent += d.length;
          const ahead = sent / bodyRate - (Date.now() - started) / 1000;
          if (ahead > 0) {
            ur.pause();
            setTimeout(() => ur.resume(), ahead * 1000);
          }
        });
        ur.on('end', () => res.end());
        ur.on('error', () => res.socket?.destroy());
        return;
      }
      ur.pipe(res);
    });
    up.on('error', () => res.socket?.destroy());
    req.pipe(up);
  });
  server.on('connection', (s: Socket) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((r) => server.listen(port, '127.0.0.1', r));
  const p = (server.address() as { port: number }).port;
  return {
    url: `http://127.0.0.1:${p}`,
    host: `127.0.0.1:${p}`,
    port: p,
    requests,
    inject: (match, ...faults) => void rules.push({ match, faults }),
    throttle: (bytesPerSec) => void (rate = bytesPerSec),
    chaos: (match, p, faults) => void (chaos = p > 0 ? { match, p, faults } : undefined),
    clearFaults: () => void (rules = []),
    get peakConcurrent() {
      return peak;
    },
    count: (match, method) => requests.filter((r) => match.test(r.path) && (method === undefined || r.method === method)).length,
    close: () =>
      new Promise((r) => {
        for (const s of sockets) s.destroy();
        server.close(() => r());
      }),
  };
}
