import { Agent, EnvHttpProxyAgent, type Dispatcher } from 'undici';

export interface TlsOptions {
  /** PEM bundle added to the trusted roots. */
  ca?: string | undefined;
  skipVerify?: boolean | undefined;
}

export interface TransportOptions {
  /** Parallel connections per origin; bounds how hard one registry is hit. */
  connectionsPerOrigin: number;
  connectTimeoutMs: number;
  tls: TlsOptions;
  /** Per-host TLS overrides (`registries.<host>.caFile/skipVerify`). */
  hostTls?: Readonly<Record<string, TlsOptions>>;
  /** Per-host connection caps (`registries.<host>.connections`). */
  hostConnections?: Readonly<Record<string, number>>;
  proxy?: { http?: string | undefined; https?: string | undefined; noProxy?: string | undefined } | undefined;
}

/**
 * One keep-alive pool per origin (undici Agent), a separate Agent only for hosts with their own
 * TLS settings, all behind the proxy when one is configured.
 */
export class Transport {
  private readonly base: Dispatcher;
  private readonly perHost = new Map<string, Dispatcher>();

  constructor(private readonly opts: TransportOptions) {
    this.base = this.make(opts.tls);
  }

  dispatcherFor(host: string): Dispatcher {
    const tls = this.opts.hostTls?.[host];
    const connections = this.opts.hostConnections?.[host];
    if (!tls && connections === undefined) return this.base;
    let d = this.perHost.get(host);
    if (!d) {
      d = this.make({ ...this.opts.tls, ...tls }, connections);
      this.perHost.set(host, d);
    }
    return d;
  }

  get defaultDispatcher(): Dispatcher {
    return this.base;
  }

  async close(): Promise<void> {
    await Promise.all([this.base, ...this.perHost.values()].map((d) => d.close().catch(() => {})));
  }

  private make(tls: TlsOptions, connections = this.opts.connectionsPerOrigin): Dispatcher {
    const options = {
      connections,
      keepAliveTimeout: 30_000,
      connect: { timeout: this.opts.connectTimeoutMs, ca: tls.ca, rejectUnauthorized: !tls.skipVerify },
    };
    const p = this.opts.proxy;
    if (p && (p.http || p.https)) {
      return new EnvHttpProxyAgent({ ...options, httpProxy: p.http, httpsProxy: p.https, noProxy: p.noProxy });
    }
    return new Agent(options);
  }
}
