import { ConfigError } from '../lib/errors.js';
import { parseSize } from '../lib/size.js';

/** Per-registry settings, the `registries.<host>` block of the config file. */
export interface RegistrySettings {
  readonly insecure?: boolean | undefined;
  readonly caFile?: string | undefined;
  readonly skipVerify?: boolean | undefined;
  readonly username?: string | undefined;
  readonly password?: string | undefined;
  readonly token?: string | undefined;
  readonly mirrors?: readonly string[] | undefined;
  readonly connections?: number | undefined;
}

/** The validated, frozen configuration every component takes its slice from. */
export interface RegfsConfig {
  readonly cacheDir: string;
  readonly cacheSize: number;
  readonly chunkSize: number;
  readonly platform: string | undefined;
  readonly logLevel: 'trace' | 'debug' | 'info' | 'warn' | 'error' | 'silent';
  readonly metrics: string | undefined;
  readonly store: string | undefined;
  /** `serve`: mount path of the podman/CRI-O additional layer store (containers/storage `additionallayerstores`). */
  readonly layerStore: string | undefined;
  readonly registries: Readonly<Record<string, RegistrySettings>>;
  readonly dockerConfig: string | undefined;
  readonly insecure: readonly string[];
  readonly caFile: string | undefined;
  readonly skipVerify: boolean;
  /** Wall-clock budget of one registry request including retries (ms). */
  readonly retryBudget: number;
  readonly connections: number;
  readonly prefetch: 'none' | 'all';
  readonly prefetchRate: number;
  /** SOCI index use (#14): `auto` uses one when found, `soci` also warns when none is, `none` never looks. */
  readonly index: 'auto' | 'soci' | 'none';
  readonly allowOther: boolean;
  /**
   * Mounts survive a restart, an upgrade and a crash (#19, docs/takeover.md): regfs serves the
   * FUSE session itself (root only) and keeps its descriptor in systemd's fd store or in
   * regfs-fd-holder; SIGUSR2 hands the mount over instead of unmounting it.
   */
  readonly keepMounts: boolean;
  /** Control socket of `regfs serve` (`regfs ctl` talks to it). */
  readonly control: string | undefined;
  /** Images not used for this long are forgotten by `serve` (their cache stays); ms. */
  readonly idleTimeout: number;
  /** From systemd's environment ($NOTIFY_SOCKET, $WATCHDOG_USEC); not settable. */
  readonly notifySocket: string | undefined;
  readonly watchdogUsec: number | undefined;
  /** Descriptors systemd passed ($LISTEN_PID, $LISTEN_FDS, $LISTEN_FDNAMES: sd_listen_fds(3)); not settable. */
  readonly listen: { readonly pid: string | undefined; readonly fds: string | undefined; readonly fdNames: string | undefined };
  readonly proxy: { readonly http: string | undefined; readonly https: string | undefined; readonly noProxy: string | undefined };
}

type Parser = (v: unknown, key: string) => unknown;

const str: Parser = (v, key) => {
  if (typeof v !== 'string' || v === '') throw new ConfigError(`${key} must be a non-empty string, got ${JSON.stringify(v)}`);
  return v;
};
const bool: Parser = (v, key) => {
  if (typeof v === 'boolean') return v;
  if (v === 'true' || v === '1') return true;
  if (v === 'false' || v === '0') return false;
  throw new ConfigError(`${key} must be true or false, got ${JSON.stringify(v)}`);
};
const size: Parser = (v, key) => {
  const n = parseSize(v as string | number);
  if (n === undefined) throw new ConfigError(`${key} must be a size such as 10GiB, 512MiB or 1048576, got ${JSON.stringify(v)}`);
  return n;
};
const duration: Parser = (v, key) => {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m)?$/.exec(String(v).trim());
  if (!m) throw new ConfigError(`${key} must be a duration such as 30s, 500ms or 2m, got ${JSON.stringify(v)}`);
  return Math.round(Number(m[1]) * (m[2] === 'ms' ? 1 : m[2] === 'm' ? 60_000 : 1000));
};
const int = (min: number, max: number): Parser => (v, key) => {
  const n = typeof v === 'number' ? v : Number(v);
  if (!Number.isInteger(n) || n < min || n > max) throw new ConfigError(`${key} must be an integer in ${min}…${max}, got ${JSON.stringify(v)}`);
  return n;
};
const oneOf = (...values: string[]): Parser => (v, key) => {
  if (typeof v !== 'string' || !values.includes(v)) throw new ConfigError(`${key} must be one of ${values.join(', ')}, got ${JSON.stringify(v)}`);
  return v;
};
const list: Parser = (v, key) => {
  const arr = typeof v === 'string' ? v.split(',').map((s) => s.trim()).filter(Boolean) : v;
  if (!Array.isArray(arr) || arr.some((x) => typeof x !== 'string')) throw new ConfigError(`${key} must be a list of strings`);
  return arr;
};
const chunkSize: Parser = (v, key) => {
  const n = size(v, key) as number;
  if (n < 64 * 1024 || n > 16 * 1024 * 1024 || (n & (n - 1)) !== 0) {
    throw new ConfigError(`${key} must be a power of two between 64KiB and 16MiB, got ${JSON.stringify(v)}`);
  }
  return n;
};
const platform: Parser = (v, key) => {
  const s = str(v, key) as string;
  if (!/^[a-z0-9_.-]+\/[a-z0-9_.-]+(\/[a-z0-9_.-]+)?$/.test(s)) throw new ConfigError(`${key} must be os/architecture[/variant], e.g. linux/amd64, got ${JSON.stringify(v)}`);
  return s;
};
const metrics: Parser = (v, key) => {
  const s = str(v, key) as string;
  if (!/^unix:.+$/.test(s) && !/^(\[[0-9a-fA-F:]+\]|[A-Za-z0-9.-]*):\d{1,5}$/.test(s)) {
    throw new ConfigError(`${key} must be HOST:PORT or unix:PATH, got ${JSON.stringify(v)}`);
  }
  return s;
};

const REGISTRY_KEYS: Record<keyof RegistrySettings, Parser> = {
  insecure: bool,
  connections: (v, key) => int(1, 256)(v, key),
  caFile: str,
  skipVerify: bool,
  username: str,
  password: (v, key) => {
    if (typeof v !== 'string') throw new ConfigError(`${key} must be a string`);
    return v;
  },
  token: str,
  mirrors: (v, key) => {
    const arr = list(v, key) as string[];
    for (const m of arr) {
      if (!/^https?:\/\/[^/]+/.test(m)) throw new ConfigError(`${key} entries must be http(s)://host[:port] URLs, got ${JSON.stringify(m)}`);
    }
    return arr;
  },
};

const registries: Parser = (v, key) => {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new ConfigError(`${key} must be a map of host → settings`);
  const out: Record<string, RegistrySettings> = {};
  for (const [host, settings] of Object.entries(v)) {
    if (typeof settings !== 'object' || settings === null) throw new ConfigError(`${key}.${host} must be an object`);
    const s: Record<string, unknown> = {};
    for (const [k, val] of Object.entries(settings)) {
      const p = REGISTRY_KEYS[k as keyof RegistrySettings];
      if (!p) throw new ConfigError(`unknown key ${key}.${host}.${k} (known: ${Object.keys(REGISTRY_KEYS).join(', ')})`);
      s[k] = p(val, `${key}.${host}.${k}`);
    }
    out[host] = Object.freeze(s) as RegistrySettings;
  }
  return Object.freeze(out);
};

/** Every user-settable key, its parser; the same names in flags, env (REGFS_*) and the file. */
export const KEYS = {
  cacheDir: str,
  cacheSize: size,
  chunkSize,
  platform,
  logLevel: oneOf('trace', 'debug', 'info', 'warn', 'error', 'silent'),
  metrics,
  store: str,
  layerStore: str,
  registries,
  dockerConfig: str,
  insecure: list,
  caFile: str,
  skipVerify: bool,
  retryBudget: duration,
  connections: int(1, 256),
  prefetch: oneOf('none', 'all'),
  prefetchRate: size,
  index: oneOf('auto', 'soci', 'none'),
  allowOther: bool,
  keepMounts: bool,
  control: str,
  idleTimeout: duration,
} satisfies Record<string, Parser>;

export type ConfigKey = keyof typeof KEYS;
