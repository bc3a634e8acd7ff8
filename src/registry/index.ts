import { Authenticator } from './authenticator.js';
import { AuthorizedHttp } from './authorized-http.js';
import { RegistryPusher } from './push.js';
import { RegistryClient } from './client.js';
import { type Credential, createDockerCredentials } from './credentials.js';
import type { RegistryObserver } from './observer.js';
import type { RetryPolicy } from './retry.js';
import { TokenClient } from './token-client.js';
import { type TlsOptions, Transport } from './transport.js';
import type { Logger } from '../lib/logger.js';

export interface RegistryHostSettings {
  insecure?: boolean | undefined;
  ca?: string | undefined;
  skipVerify?: boolean | undefined;
  username?: string | undefined;
  password?: string | undefined;
  token?: string | undefined;
  /** Mirror base URLs (`http(s)://host[:port]`), tried in order before this registry. */
  mirrors?: readonly string[] | undefined;
  /** Connections to this registry at once (default: the global `connections`). */
  connections?: number | undefined;
}

export interface RegistryConfig {
  retry: RetryPolicy;
  connectionsPerOrigin: number;
  connectTimeoutMs: number;
  headersTimeoutMs: number;
  bodyTimeoutMs: number;
  redirectTtlMs: number;
  maxManifestBytes: number;
  mirrorBackoffMs?: number | undefined;
  insecureHosts: readonly string[];
  tls: TlsOptions;
  hosts: Readonly<Record<string, RegistryHostSettings>>;
  dockerConfigPath: string | undefined;
  proxy?: { http?: string | undefined; https?: string | undefined; noProxy?: string | undefined } | undefined;
}

export interface Registry {
  client: RegistryClient;
  /** Authenticated requests beyond reads: referrers listings and pushes (#14). */
  http: AuthorizedHttp;
  pusher: RegistryPusher;
  close(): Promise<void>;
}

/** Builds the registry backend from its config slice. */
export function createRegistry(cfg: RegistryConfig, deps: { observer?: RegistryObserver; logger?: Logger } = {}): Registry {
  const hostTls: Record<string, TlsOptions> = {};
  const hostConnections: Record<string, number> = {};
  const explicit: Record<string, Credential> = {};
  const staticTokens: Record<string, string> = {};
  const insecure = new Set(cfg.insecureHosts);
  const mirrors: Record<string, string[]> = {};
  for (const [host, s] of Object.entries(cfg.hosts)) {
    for (const m of s.mirrors ?? []) {
      const u = new URL(m);
      (mirrors[host] ??= []).push(u.host);
      // A mirror named with http:// is reached over plain HTTP, as written.
      if (u.protocol === 'http:') insecure.add(u.host);
    }
    if (s.ca !== undefined || s.skipVerify !== undefined) hostTls[host] = { ca: s.ca, skipVerify: s.skipVerify };
    if (s.username !== undefined) explicit[host] = { username: s.username, password: s.password };
    if (s.token !== undefined) staticTokens[host] = s.token;
    if (s.insecure) insecure.add(host);
    if (s.connections !== undefined) hostConnections[host] = s.connections;
  }
  const transport = new Transport({
    connectionsPerOrigin: cfg.connectionsPerOrigin,
    connectTimeoutMs: cfg.connectTimeoutMs,
    tls: cfg.tls,
    hostTls,
    hostConnections,
    proxy: cfg.proxy,
  });
  const tokens = new TokenClient({
    dispatcher: transport.defaultDispatcher,
    headersTimeoutMs: cfg.headersTimeoutMs,
    bodyTimeoutMs: cfg.bodyTimeoutMs,
    onFetch: (host, _m, status) => deps.observer?.request?.(host, 'token', status),
  });
  const auth = new Authenticator({
    credentials: createDockerCredentials({ dockerConfigPath: cfg.dockerConfigPath, explicit }),
    tokens,
    staticTokens,
    tokenTimeoutMs: Math.min(30_000, cfg.retry.budgetMs),
    onTokenFetched: (h) => deps.observer?.tokenFetched?.(h),
  });
  const client = new RegistryClient({
    transport,
    auth,
    retry: cfg.retry,
    insecureHosts: insecure,
    redirectTtlMs: cfg.redirectTtlMs,
    headersTimeoutMs: cfg.headersTimeoutMs,
    bodyTimeoutMs: cfg.bodyTimeoutMs,
    maxManifestBytes: cfg.maxManifestBytes,
    mirrors,
    mirrorBackoffMs: cfg.mirrorBackoffMs,
    observer: deps.observer,
    logger: deps.logger,
  });
  const http = new AuthorizedHttp({ transport, auth, insecureHosts: insecure, headersTimeoutMs: cfg.headersTimeoutMs, bodyTimeoutMs: cfg.bodyTimeoutMs });
  return { client, http, pusher: new RegistryPusher(http), close: () => transport.close() };
}

export { RegistryClient, type RepoLocator } from './client.js';
export { resolveImage, type ResolvedImage, type ResolveOptions, type IndexMode, type SociDiscovery } from './resolve.js';
export { AuthorizedHttp } from './authorized-http.js';
export { RegistryPusher, referrersTag } from './push.js';
export { listReferrers } from './referrers.js';
export * as soci from './soci-index.js';
export { createBlobFetcher } from './blob-fetcher.js';
export { isRegistryHost, isRepositoryComponent, isTag, parseReference, type ImageReference } from './reference.js';
export { hostPlatform, parsePlatform, formatPlatform, type Platform } from './platform.js';
export type { RetryPolicy } from './retry.js';
export type { RegistryObserver } from './observer.js';
