import { createRegistry, type Registry, type RegistryConfig, type RegistryObserver } from '../../src/registry/index.js';

export function registryConfig(overrides: Partial<RegistryConfig> = {}): RegistryConfig {
  return {
    retry: { budgetMs: 10_000, baseDelayMs: 50, maxDelayMs: 1000 },
    connectionsPerOrigin: 16,
    connectTimeoutMs: 5000,
    headersTimeoutMs: 5000,
    bodyTimeoutMs: 5000,
    redirectTtlMs: 600_000,
    maxManifestBytes: 50 << 20,
    insecureHosts: [],
    tls: {},
    hosts: {},
    dockerConfigPath: undefined,
    ...overrides,
  };
}

export interface Counted {
  tokens: number;
  requests: { host: string; kind: string; status: number | 'error' }[];
  redirectHits: number;
}

export function makeRegistry(overrides: Partial<RegistryConfig> = {}): { registry: Registry; counted: Counted } {
  const counted: Counted = { tokens: 0, requests: [], redirectHits: 0 };
  const observer: RegistryObserver = {
    tokenFetched: () => void counted.tokens++,
    request: (host, kind, status) => void counted.requests.push({ host, kind, status }),
    redirectCacheHit: () => void counted.redirectHits++,
  };
  return { registry: createRegistry(registryConfig(overrides), { observer }), counted };
}
