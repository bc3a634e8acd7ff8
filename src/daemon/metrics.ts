import { createServer, type Server } from 'node:http';
import { chmod, unlink } from 'node:fs/promises';
import type { ReaderCounters } from '../blob/counters.js';
import type { CacheCounters } from '../cache/chunk-store.js';
import type { ProfileCounters } from './profile-session.js';
import type { RegistryObserver } from '../registry/index.js';
import { ConfigError } from '../lib/errors.js';

/** Counters owned elsewhere, read when Prometheus scrapes. */
export interface MetricSources {
  reader?: () => ReaderCounters | undefined;
  cache?: () => CacheCounters | undefined;
  readsInFlight?: () => number;
  /** Access-profile replay (#15). */
  profile?: () => ProfileCounters | undefined;
}

/** What the daemon reports to; the Prometheus implementation or a no-op when nobody scrapes. */
export interface MetricsSink {
  readonly observer: RegistryObserver;
  observeRead(seconds: number): void;
  indexBuilt(format: string): void;
  /** A layer opened, by how it is served (#14: eStargz, SOCI zTOC, cached index, local pass). */
  layerServed(how: string): void;
  indexProgress(layer: string, done: number, total: number): void;
  attach(sources: MetricSources): void;
  text(): Promise<string>;
  json(): Promise<unknown>;
  readonly contentType: string;
}

/** Loads prom-client only when metrics are wanted: it costs ~13 MB of RSS just by being loaded. */
export async function createMetrics(enabled: boolean): Promise<MetricsSink> {
  if (enabled) return new (await import('./prometheus-metrics.js')).PrometheusMetrics();
  return {
    observer: {},
    observeRead() {},
    indexBuilt() {},
    layerServed() {},
    indexProgress() {},
    attach() {},
    text: async () => '',
    json: async () => [],
    contentType: 'text/plain',
  };
}

/** Serves /metrics and /healthz on HOST:PORT or unix:PATH (0600). */
export async function serveMetrics(metrics: MetricsSink, addr: string, healthy: () => boolean): Promise<{ address: string; close: () => Promise<void> }> {
  const server: Server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (path === '/metrics') {
      metrics.text().then(
        (t) => res.writeHead(200, { 'content-type': metrics.contentType }).end(t),
        (e: Error) => res.writeHead(500).end(e.message),
      );
    } else if (path === '/healthz') {
      const ok = healthy();
      res.writeHead(ok ? 200 : 503, { 'content-type': 'text/plain' }).end(ok ? 'ok\n' : 'not ready\n');
    } else res.writeHead(404).end('try /metrics or /healthz\n');
  });
  let address: string;
  if (addr.startsWith('unix:')) {
    const path = addr.slice(5);
    await unlink(path).catch(() => {});
    await listen(server, path);
    await chmod(path, 0o600);
    address = addr;
  } else {
    const i = addr.lastIndexOf(':');
    const host = addr.slice(0, i).replace(/^\[|\]$/g, '') || '127.0.0.1';
    const port = Number(addr.slice(i + 1));
    await listen(server, port, host);
    const a = server.address() as { port: number };
    address = `${host.includes(':') ? `[${host}]` : host}:${a.port}`;
  }
  return { address, close: () => new Promise((r) => server.close(() => r())) };
}

function listen(server: Server, ...args: [string] | [number, string]): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once('error', (e: NodeJS.ErrnoException) => reject(new ConfigError(`cannot serve metrics on ${args.length === 2 ? `${args[1]}:${args[0]}` : args[0]}: ${e.message}`)));
    (server.listen as (...a: unknown[]) => void)(...args, () => resolve());
  });
}
