import { join } from 'node:path';
import { ConfigError } from '../lib/errors.js';
import { parseSize } from '../lib/size.js';

/**
 * The one schema of regfs's configuration. Each key is declared once, here: its parser (which
 * validates and converts — sizes and durations are parsed in this file and nowhere else), its
 * default, its help text and which commands offer it as a flag. The config type, the defaults,
 * the `REGFS_*` environment names, the config-file keys and the yargs flags are all derived from
 * it (load.ts, cli/options.ts), so a new key is one entry below.
 *
 * Hand-written rather than zod or valibot: every key needs a custom parser anyway (sizes,
 * durations, host:port, power-of-two chunk sizes) with messages that name the key as the user
 * wrote it (`--cache-size`, `REGFS_CACHE_SIZE`, `cacheSize`), and the CLI's start-up time counts
 * (eStargz's first bytes include Node's start). Measured here, fastest of 15 imports on a busy
 * 2-core machine: zod 4.6 135 ms, valibot 1.5 9 ms, this file with its imports 5 ms.
 */

/** What a computed default may depend on: decided once at load, from the process's environment. */
export interface DefaultContext {
  readonly isRoot: boolean;
  readonly env: NodeJS.ProcessEnv;
  readonly home: string;
  /** The values resolved so far (keys are resolved in schema order). */
  readonly resolved: Readonly<Record<string, unknown>>;
}

/** Commands that take configuration flags. */
export type Command = 'mount' | 'serve' | 'ctl' | 'inspect' | 'blob' | 'cache' | 'index' | 'profile';
const EVERY: readonly Command[] = ['mount', 'serve', 'ctl', 'inspect', 'blob', 'cache', 'index', 'profile'];
/** Commands that talk to registries. */
const FETCHING: readonly Command[] = ['mount', 'serve', 'inspect', 'blob', 'index', 'profile'];

export type Parser<T> = (v: unknown, name: string) => T;

interface Flag {
  readonly type: 'string' | 'boolean';
  /** Repeatable (`--insecure a --insecure b`). */
  readonly array?: true;
  readonly choices?: readonly string[];
  readonly commands: readonly Command[];
}

interface Spec<T> {
  readonly parse: Parser<T>;
  readonly help: string;
  /** Shown in --help as `[default: …]` when the default is computed or absent. */
  readonly defaultHelp?: string;
  /** Absent: not a flag (the file, and env unless `env: false`). */
  readonly flag?: Flag;
  /** false: no `REGFS_*` variable (a structure with no one-line form). */
  readonly env?: false;
}

/** A key with a default: written as a user would write it and parsed like any value, or computed. */
export interface KeyWithDefault<T> extends Spec<T> {
  readonly optional: false;
  readonly default: string | number | boolean | ((c: DefaultContext) => T);
}

/** A key that may stay unset (undefined in the config). */
export interface OptionalKey<T> extends Spec<T> {
  readonly optional: true;
}

function withDefault<T>(spec: Spec<T> & { default: KeyWithDefault<T>['default'] }): KeyWithDefault<T> {
  return { ...spec, optional: false };
}
function optional<T>(spec: Spec<T>): OptionalKey<T> {
  return { ...spec, optional: true };
}

const str: Parser<string> = (v, key) => {
  if (typeof v !== 'string' || v === '') throw new ConfigError(`${key} must be a non-empty string, got ${JSON.stringify(v)}`);
  return v;
};
const bool: Parser<boolean> = (v, key) => {
  if (typeof v === 'boolean') return v;
  if (v === 'true' || v === '1') return true;
  if (v === 'false' || v === '0') return false;
  throw new ConfigError(`${key} must be true or false, got ${JSON.stringify(v)}`);
};
const size: Parser<number> = (v, key) => {
  const n = typeof v === 'string' || typeof v === 'number' ? parseSize(v) : undefined;
  if (n === undefined) throw new ConfigError(`${key} must be a size such as 10GiB, 512MiB or 1048576, got ${JSON.stringify(v)}`);
  return n;
};
/** Milliseconds from `500ms`, `30s`, `2m` or a bare number of seconds. */
const duration: Parser<number> = (v, key) => {
  const m = typeof v === 'string' || typeof v === 'number' ? /^(\d+(?:\.\d+)?)(ms|s|m)?$/.exec(String(v).trim()) : null;
  if (!m) throw new ConfigError(`${key} must be a duration such as 30s, 500ms or 2m, got ${JSON.stringify(v)}`);
  return Math.round(Number(m[1]) * (m[2] === 'ms' ? 1 : m[2] === 'm' ? 60_000 : 1000));
};
const int = (min: number, max: number): Parser<number> => (v, key) => {
  const n = typeof v === 'number' ? v : typeof v === 'string' && v.trim() !== '' ? Number(v) : NaN;
  if (!Number.isInteger(n) || n < min || n > max) throw new ConfigError(`${key} must be an integer in ${min}…${max}, got ${JSON.stringify(v)}`);
  return n;
};
const oneOf = <const V extends string>(...values: V[]): Parser<V> => (v, key) => {
  if (typeof v !== 'string' || !(values as string[]).includes(v)) throw new ConfigError(`${key} must be one of ${values.join(', ')}, got ${JSON.stringify(v)}`);
  return v as V;
};
/** A list from YAML/JSON, repeated flags, or a comma-separated env value. */
const list: Parser<readonly string[]> = (v, key) => {
  const arr: unknown = typeof v === 'string' ? v.split(',').map((s) => s.trim()).filter(Boolean) : v;
  if (!Array.isArray(arr) || arr.some((x) => typeof x !== 'string')) throw new ConfigError(`${key} must be a list of strings`);
  return Object.freeze([...(arr as string[])]);
};
const chunkSize: Parser<number> = (v, key) => {
  const n = size(v, key);
  if (n < 64 * 1024 || n > 16 * 1024 * 1024 || (n & (n - 1)) !== 0) {
    throw new ConfigError(`${key} must be a power of two between 64KiB and 16MiB, got ${JSON.stringify(v)}`);
  }
  return n;
};
const platform: Parser<string> = (v, key) => {
  const s = str(v, key);
  if (!/^[a-z0-9_.-]+\/[a-z0-9_.-]+(\/[a-z0-9_.-]+)?$/.test(s)) throw new ConfigError(`${key} must be os/architecture[/variant], e.g. linux/amd64, got ${JSON.stringify(v)}`);
  return s;
};
const listenAddress: Parser<string> = (v, key) => {
  const s = str(v, key);
  if (!/^unix:.+$/.test(s) && !/^(\[[0-9a-fA-F:]+\]|[A-Za-z0-9.-]*):\d{1,5}$/.test(s)) {
    throw new ConfigError(`${key} must be HOST:PORT or unix:PATH, got ${JSON.stringify(v)}`);
  }
  return s;
};
/** A password may be empty (some registries issue tokens for an empty one); it must be a string. */
const password: Parser<string> = (v, key) => {
  if (typeof v !== 'string') throw new ConfigError(`${key} must be a string`);
  return v;
};
const mirrors: Parser<readonly string[]> = (v, key) => {
  const arr = list(v, key);
  for (const m of arr) {
    if (!/^https?:\/\/[^/]+/.test(m)) throw new ConfigError(`${key} entries must be http(s)://host[:port] URLs, got ${JSON.stringify(m)}`);
  }
  return arr;
};

/** The `registries.<host>` block of the config file: every key optional. */
const REGISTRY_KEYS = {
  insecure: bool,
  connections: int(1, 256),
  caFile: str,
  skipVerify: bool,
  username: str,
  password,
  token: str,
  mirrors,
} satisfies Record<string, Parser<unknown>>;

/** Per-registry settings, derived from their parsers. */
export type RegistrySettings = { readonly [K in keyof typeof REGISTRY_KEYS]?: ReturnType<(typeof REGISTRY_KEYS)[K]> };

const registries: Parser<Readonly<Record<string, RegistrySettings>>> = (v, key) => {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new ConfigError(`${key} must be a map of host → settings`);
  const out: Record<string, RegistrySettings> = {};
  for (const [host, settings] of Object.entries(v)) {
    if (typeof settings !== 'object' || settings === null || Array.isArray(settings)) throw new ConfigError(`${key}.${host} must be an object`);
    const s: Record<string, unknown> = {};
    for (const [k, val] of Object.entries(settings)) {
      if (!Object.hasOwn(REGISTRY_KEYS, k)) throw new ConfigError(`unknown key ${key}.${host}.${k} (known: ${Object.keys(REGISTRY_KEYS).join(', ')})`);
      s[k] = REGISTRY_KEYS[k as keyof typeof REGISTRY_KEYS](val, `${key}.${host}.${k}`);
    }
    out[host] = Object.freeze(s);
  }
  return Object.freeze(out);
};

/** Every user-settable key; the same names in flags (kebab-case), `REGFS_*` (snake) and the file. */
export const SCHEMA = {
  cacheDir: withDefault({
    parse: str,
    default: (c) => (c.isRoot ? '/var/cache/regfs' : join(c.env['XDG_CACHE_HOME'] || join(c.home, '.cache'), 'regfs')),
    defaultHelp: '/var/cache/regfs as root, else $XDG_CACHE_HOME/regfs',
    help: 'chunk cache directory',
    flag: { type: 'string', commands: EVERY },
  }),
  cacheSize: withDefault({ parse: size, default: '10GiB', help: 'cache size limit, e.g. 10GiB', flag: { type: 'string', commands: EVERY } }),
  // The block a random read fetches and the cache checksums (#16: a cold 4 KiB read costs 64 KiB, not 1 MiB).
  chunkSize: withDefault({ parse: chunkSize, default: '64KiB', help: 'cache block size: what a random read fetches and the cache checksums, power of two 64KiB…16MiB', flag: { type: 'string', commands: EVERY } }),
  platform: optional({
    parse: platform,
    defaultHelp: 'this host',
    help: 'platform to pick from a multi-arch index, os/arch[/variant]',
    flag: { type: 'string', commands: EVERY },
  }),
  logLevel: withDefault({
    parse: oneOf('trace', 'debug', 'info', 'warn', 'error', 'silent'),
    default: 'info',
    help: 'trace|debug|info|warn|error|silent',
    flag: { type: 'string', commands: EVERY },
  }),
  metrics: optional({ parse: listenAddress, help: 'serve Prometheus metrics and /healthz on HOST:PORT or unix:PATH', flag: { type: 'string', commands: ['mount', 'serve'] } }),
  store: optional({ parse: str, help: 'mount path of the image store (serve)', flag: { type: 'string', commands: ['serve'] } }),
  layerStore: optional({
    parse: str,
    help: 'also mount a podman/CRI-O additional layer store here (storage.conf additionallayerstores = ["<path>:ref"])',
    flag: { type: 'string', commands: ['serve'] },
  }),
  registries: withDefault({ parse: registries, default: (): Readonly<Record<string, RegistrySettings>> => Object.freeze({}), help: 'per-registry settings (config file only)', env: false }),
  dockerConfig: withDefault({
    parse: str,
    default: (c) => join(c.env['DOCKER_CONFIG'] || join(c.home, '.docker'), 'config.json'),
    defaultHelp: '~/.docker/config.json',
    help: 'docker config.json for credentials',
    flag: { type: 'string', commands: EVERY },
  }),
  insecure: withDefault({
    parse: list,
    default: (): readonly string[] => Object.freeze([]),
    defaultHelp: 'none',
    help: 'registry host[:port] to reach over plain HTTP (loopback always may)',
    flag: { type: 'string', array: true, commands: EVERY },
  }),
  caFile: optional({ parse: str, help: 'extra PEM CA bundle for registry TLS', flag: { type: 'string', commands: EVERY } }),
  skipVerify: withDefault({ parse: bool, default: false, help: 'do not verify registry TLS certificates (unsafe)', flag: { type: 'boolean', commands: EVERY } }),
  retryBudget: withDefault({ parse: duration, default: '30s', help: 'time allowed for one registry request incl. retries, e.g. 30s', flag: { type: 'string', commands: EVERY } }),
  connections: withDefault({ parse: int(1, 256), default: 16, help: 'connections per registry origin', flag: { type: 'string', commands: FETCHING } }),
  prefetch: withDefault({
    parse: oneOf('none', 'all'),
    default: 'none',
    help: 'all: fetch every layer in the background once mounted',
    flag: { type: 'string', choices: ['none', 'all'], commands: ['mount'] },
  }),
  prefetchRate: withDefault({
    parse: size,
    default: 0,
    defaultHelp: 'no cap',
    help: 'bandwidth cap for --prefetch all and access-profile replay, e.g. 20MiB (per second)',
    flag: { type: 'string', commands: ['mount', 'serve'] },
  }),
  // Access profiles (#15): what a mount reads first is recorded and prefetched by the next mount.
  profileRecord: withDefault({
    parse: duration,
    default: '60s',
    help: 'record which files and ranges a mount (or a serve image) reads in its first this-long into <cacheDir>/profiles/ (0 = do not record)',
    flag: { type: 'string', commands: ['mount', 'serve'] },
  }),
  profileReplay: withDefault({
    parse: oneOf('auto', 'local', 'none'),
    default: 'auto',
    help: 'prefetch what an earlier mount of the image read first: auto = the local profile, else one attached to the image in the registry; local = only the local one; none = never',
    flag: { type: 'string', choices: ['auto', 'local', 'none'], commands: ['mount', 'serve'] },
  }),
  index: withDefault({
    parse: oneOf('auto', 'soci', 'none'),
    default: 'auto',
    help: 'SOCI index (#14): auto = use one when the registry has it, soci = also warn when none, none = never look',
    flag: { type: 'string', choices: ['auto', 'soci', 'none'], commands: EVERY },
  }),
  allowOther: withDefault({
    parse: bool,
    default: false,
    help: 'let other users (and containers) see the mount (needs user_allow_other in /etc/fuse.conf)',
    flag: { type: 'boolean', commands: ['mount', 'serve'] },
  }),
  keepMounts: withDefault({
    parse: bool,
    default: false,
    help: 'root: the mount survives a crash or an upgrade; a new start on the same mountpoint takes it over, SIGUSR2 hands it over (docs/takeover.md, #19)',
    flag: { type: 'boolean', commands: ['mount', 'serve'] },
  }),
  control: withDefault({
    parse: str,
    default: (c) => join(String(c.resolved['cacheDir']), 'control.sock'),
    defaultHelp: '<cacheDir>/control.sock',
    help: 'control socket of `regfs serve` (regfs ctl talks to it)',
    flag: { type: 'string', commands: ['serve', 'ctl'] },
  }),
  idleTimeout: withDefault({
    parse: duration,
    default: '10m',
    help: 'serve forgets images unused this long (their cache stays)',
    flag: { type: 'string', commands: ['serve'] },
  }),
} satisfies Record<string, KeyWithDefault<unknown> | OptionalKey<unknown>>;

export type ConfigKey = keyof typeof SCHEMA;

/** The type a key's value has in the config: its parser's result, or undefined when optional. */
export type ValueOf<S> = S extends { optional: true; parse: Parser<infer T> } ? T | undefined : S extends { parse: Parser<infer T> } ? T : never;

/** Read from the environment systemd and the shell give us; not settable as keys. */
export interface EnvironmentFacts {
  /** $NOTIFY_SOCKET and $WATCHDOG_USEC from systemd. */
  readonly notifySocket: string | undefined;
  readonly watchdogUsec: number | undefined;
  /** Descriptors systemd passed ($LISTEN_PID, $LISTEN_FDS, $LISTEN_FDNAMES: sd_listen_fds(3)). */
  readonly listen: { readonly pid: string | undefined; readonly fds: string | undefined; readonly fdNames: string | undefined };
  readonly proxy: { readonly http: string | undefined; readonly https: string | undefined; readonly noProxy: string | undefined };
}

/** The validated, frozen configuration every component takes its slice from. */
export type RegfsConfig = { readonly [K in ConfigKey]: ValueOf<(typeof SCHEMA)[K]> } & EnvironmentFacts;

/** `cacheSize` → `--cache-size`. */
export function flagName(key: string): string {
  return key.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);
}

/** `cacheSize` → `REGFS_CACHE_SIZE`. */
export function envName(key: string): string {
  return `REGFS_${key.replace(/[A-Z]/g, (c) => `_${c}`).toUpperCase()}`;
}
