import { readFile } from 'node:fs/promises';
import type { RegfsConfig } from '../config/load.js';
import { ConfigError } from '../lib/errors.js';
import type { Logger } from '../lib/logger.js';
import { type Registry, type RegistryConfig, type RegistryObserver, createRegistry } from '../registry/index.js';

async function readCa(path: string | undefined, key: string): Promise<string | undefined> {
  if (path === undefined) return undefined;
  try {
    return await readFile(path, 'utf8');
  } catch (e) {
    throw new ConfigError(`${key}: cannot read CA file ${path}: ${(e as Error).message}`);
  }
}

/** The registry slice of the config, with CA files read once at start-up. */
export async function registryConfigFrom(cfg: RegfsConfig): Promise<RegistryConfig> {
  const hosts: RegistryConfig['hosts'] = {};
  for (const [host, s] of Object.entries(cfg.registries)) {
    (hosts as Record<string, unknown>)[host] = {
      insecure: s.insecure,
      ca: await readCa(s.caFile, `registries.${host}.caFile`),
      skipVerify: s.skipVerify,
      username: s.username,
      password: s.password,
      token: s.token,
      mirrors: s.mirrors,
      connections: s.connections,
    };
  }
  return {
    retry: { budgetMs: cfg.retryBudget, baseDelayMs: 100, maxDelayMs: 4000 },
    connectionsPerOrigin: cfg.connections,
    connectTimeoutMs: Math.min(10_000, cfg.retryBudget),
    headersTimeoutMs: Math.min(15_000, cfg.retryBudget),
    bodyTimeoutMs: Math.min(15_000, cfg.retryBudget),
    redirectTtlMs: 10 * 60_000,
    maxManifestBytes: 50 * 1024 * 1024,
    insecureHosts: cfg.insecure,
    tls: { ca: await readCa(cfg.caFile, 'caFile'), skipVerify: cfg.skipVerify },
    hosts,
    dockerConfigPath: cfg.dockerConfig,
    proxy: cfg.proxy,
  };
}

export async function setupRegistry(cfg: RegfsConfig, logger: Logger, observer?: RegistryObserver): Promise<Registry> {
  return createRegistry(await registryConfigFrom(cfg), observer ? { logger, observer } : { logger });
}
