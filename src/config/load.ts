import { readFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { ConfigError } from '../lib/errors.js';
import { type ConfigKey, type DefaultContext, type RegfsConfig, SCHEMA, type ValueOf, envName, flagName } from './schema.js';

/** Values as given on the command line (yargs, camelCase keys), plus `--config`. */
export type RawConfig = { [K in ConfigKey]?: unknown } & { config?: string | undefined };

const KEYS = Object.keys(SCHEMA) as ConfigKey[];

function isKey(k: string): k is ConfigKey {
  return Object.hasOwn(SCHEMA, k);
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
    // YAML 1.2 is a superset of JSON, so one parser reads both. Loaded here, not at start-up:
    // importing it costs ~35 ms that a mount without a config file should not pay (#16 item 6).
    const { parse } = await import('yaml');
    parsed = parse(text);
  } catch (e) {
    throw new ConfigError(`config file ${path} is not valid YAML/JSON: ${(e as Error).message}`);
  }
  if (parsed === null || parsed === undefined) return {};
  if (typeof parsed !== 'object' || Array.isArray(parsed)) throw new ConfigError(`config file ${path} must hold a mapping of keys`);
  return parsed as Record<string, unknown>;
}

/** One source's values, each key checked to exist and parsed as that source names it. */
function fromSource(values: Record<string, unknown>, where: 'flags' | 'env' | string): Map<ConfigKey, unknown> {
  const out = new Map<ConfigKey, unknown>();
  for (const [k, v] of Object.entries(values)) {
    if (v === undefined) continue;
    if (!isKey(k)) throw new ConfigError(`unknown key ${JSON.stringify(k)} in ${where} (known: ${KEYS.join(', ')})`);
    out.set(k, SCHEMA[k].parse(v, where === 'flags' ? `--${flagName(k)}` : where === 'env' ? envName(k) : k));
  }
  return out;
}

/** The key's value from the first source that has it, else its default (parsed like any value). */
function resolveKey<K extends ConfigKey>(k: K, sources: Map<ConfigKey, unknown>[], ctx: DefaultContext): ValueOf<(typeof SCHEMA)[K]> {
  for (const s of sources) if (s.has(k)) return s.get(k) as ValueOf<(typeof SCHEMA)[K]>;
  const spec: (typeof SCHEMA)[ConfigKey] = SCHEMA[k];
  if (spec.optional) return undefined as ValueOf<(typeof SCHEMA)[K]>;
  const d = spec.default;
  return (typeof d === 'function' ? d(ctx) : spec.parse(d, `the default of ${k}`)) as ValueOf<(typeof SCHEMA)[K]>;
}

/**
 * flags > REGFS_* env > config file > defaults, every value checked by its key's parser once, the
 * result frozen. Throws a ConfigError naming the key (as the user wrote it) on the first bad or
 * unknown one — call it before detaching (`mount --daemon`) to report mistakes in the foreground.
 * The only place regfs reads process.env.
 */
export async function loadConfig(flags: RawConfig, env: NodeJS.ProcessEnv = process.env, isRoot = process.getuid?.() === 0): Promise<RegfsConfig> {
  const { config: configFlag, ...flagValues } = flags;
  const configPath = configFlag ?? env['REGFS_CONFIG'];
  const file = configPath ? fromSource(await readConfigFile(configPath), `config file ${configPath}`) : new Map<ConfigKey, unknown>();
  const envValues: Record<string, unknown> = {};
  for (const k of KEYS) {
    const v = env[envName(k)];
    if (SCHEMA[k].env !== false && v !== undefined && v !== '') envValues[k] = v;
  }
  const sources = [fromSource(flagValues, 'flags'), fromSource(envValues, 'env'), file];
  const resolved: Record<string, unknown> = {};
  const ctx: DefaultContext = { isRoot, env, home: env['HOME'] || homedir(), resolved };
  for (const k of KEYS) resolved[k] = resolveKey(k, sources, ctx);
  const watchdog = env['WATCHDOG_USEC'];
  const cfg: RegfsConfig = {
    ...(resolved as { [K in ConfigKey]: ValueOf<(typeof SCHEMA)[K]> }),
    notifySocket: env['NOTIFY_SOCKET'] || undefined,
    watchdogUsec: watchdog && /^\d+$/.test(watchdog) ? Number(watchdog) : undefined,
    listen: Object.freeze({ pid: env['LISTEN_PID'], fds: env['LISTEN_FDS'], fdNames: env['LISTEN_FDNAMES'] }),
    proxy: Object.freeze({
      http: env['HTTP_PROXY'] ?? env['http_proxy'],
      https: env['HTTPS_PROXY'] ?? env['https_proxy'],
      noProxy: env['NO_PROXY'] ?? env['no_proxy'],
    }),
  };
  return Object.freeze(cfg);
}

export type { RegfsConfig, RegistrySettings } from './schema.js';
