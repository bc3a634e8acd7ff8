import { readFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { ConfigError } from '../lib/errors.js';
import { type ConfigKey, KEYS, type RegfsConfig } from './schema.js';

export type RawConfig = Partial<Record<ConfigKey, unknown>> & { config?: string | undefined };

function envName(key: string): string {
  return `REGFS_${key.replace(/[A-Z]/g, (c) => `_${c}`).toUpperCase()}`;
}

function defaults(env: NodeJS.ProcessEnv, isRoot: boolean): Record<string, unknown> {
  const xdg = env['XDG_CACHE_HOME'] || join(env['HOME'] || homedir(), '.cache');
  const dockerDir = env['DOCKER_CONFIG'] || join(env['HOME'] || homedir(), '.docker');
  return {
    cacheDir: isRoot ? '/var/cache/regfs' : join(xdg, 'regfs'),
    cacheSize: 10 * 1024 ** 3,
    chunkSize: 1024 * 1024,
    platform: undefined,
    logLevel: 'info',
    metrics: undefined,
    store: undefined,
    layerStore: undefined,
    registries: {},
    dockerConfig: join(dockerDir, 'config.json'),
    insecure: [],
    caFile: undefined,
    skipVerify: false,
    retryBudget: 30_000,
    connections: 16,
    prefetch: 'none',
    index: 'auto',
    prefetchRate: 0,
    allowOther: false,
    keepMounts: false,
    control: undefined,
    idleTimeout: 600_000,
  };
}

async function readConfigFile(path: string): Promise<Record<string, unknown>> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (e) {
    throw new ConfigError(`cannot read config file ${path}: ${(e as Error).message}`);
  }
  let parsed: unknown;
  try {
    // YAML 1.2 is a superset of JSON, so one parser reads both.
    parsed = parseYaml(text);
  } catch (e) {
    throw new ConfigError(`config file ${path} is not valid YAML/JSON: ${(e as Error).message}`);
  }
  if (parsed === null || parsed === undefined) return {};
  if (typeof parsed !== 'object' || Array.isArray(parsed)) throw new ConfigError(`config file ${path} must hold a mapping of keys`);
  return parsed as Record<string, unknown>;
}

/**
 * defaults ← config file ← REGFS_* env ← flags, each value validated by the same parser, the
 * result frozen. The only place regfs reads process.env.
 */
export async function loadConfig(flags: RawConfig, env: NodeJS.ProcessEnv = process.env, isRoot = process.getuid?.() === 0): Promise<RegfsConfig> {
  const merged: Record<string, unknown> = {};
  const set = (source: Record<string, unknown>, where: string): void => {
    for (const [k, v] of Object.entries(source)) {
      if (v === undefined) continue;
      const parser = KEYS[k as ConfigKey];
      if (!parser) throw new ConfigError(`unknown key ${JSON.stringify(k)} in ${where} (known: ${Object.keys(KEYS).join(', ')})`);
      merged[k] = parser(v, where === 'flags' ? `--${k.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}` : where === 'env' ? envName(k) : k);
    }
  };
  const configPath = flags.config ?? env['REGFS_CONFIG'];
  if (configPath) set(await readConfigFile(configPath), `config file ${configPath}`);
  const fromEnv: Record<string, unknown> = {};
  for (const k of Object.keys(KEYS)) {
    const v = env[envName(k)];
    if (v !== undefined && v !== '' && k !== 'registries') fromEnv[k] = v;
  }
  set(fromEnv, 'env');
  const { config: _ignored, ...flagValues } = flags;
  set(flagValues, 'flags');
  const out = { ...defaults(env, isRoot), ...merged } as Record<string, unknown>;
  out['control'] ??= join(String(out['cacheDir']), 'control.sock');
  out['notifySocket'] = env['NOTIFY_SOCKET'] || undefined;
  out['listen'] = Object.freeze({ pid: env['LISTEN_PID'], fds: env['LISTEN_FDS'], fdNames: env['LISTEN_FDNAMES'] });
  out['watchdogUsec'] = env['WATCHDOG_USEC'] && /^\d+$/.test(env['WATCHDOG_USEC']) ? Number(env['WATCHDOG_USEC']) : undefined;
  out['proxy'] = Object.freeze({
    http: env['HTTP_PROXY'] ?? env['http_proxy'],
    https: env['HTTPS_PROXY'] ?? env['https_proxy'],
    noProxy: env['NO_PROXY'] ?? env['no_proxy'],
  });
  return Object.freeze(out) as unknown as RegfsConfig;
}

export type { RegfsConfig, RegistrySettings } from './schema.js';
