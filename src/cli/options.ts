import type { Argv } from 'yargs';
import { type RawConfig, loadConfig } from '../config/load.js';
import type { RegfsConfig } from '../config/schema.js';

/** Options every command shares; names match the config file keys (flag > env > file > default). */
export function withCommonOptions<T>(y: Argv<T>) {
  return y
    .option('config', { type: 'string', describe: 'YAML or JSON config file (keys as the flags, camelCase)' })
    .option('cache-dir', { type: 'string', describe: 'chunk cache directory [default: /var/cache/regfs as root, else $XDG_CACHE_HOME/regfs]' })
    .option('cache-size', { type: 'string', describe: 'cache size limit, e.g. 10GiB [default: 10GiB]' })
    .option('chunk-size', { type: 'string', describe: 'cache chunk size, power of two 64KiB…16MiB [default: 1MiB]' })
    .option('platform', { type: 'string', describe: 'platform to pick from a multi-arch index, os/arch[/variant] [default: this host]' })
    .option('insecure', { type: 'string', array: true, describe: 'registry host[:port] to reach over plain HTTP (loopback always may)' })
    .option('ca-file', { type: 'string', describe: 'extra PEM CA bundle for registry TLS' })
    .option('skip-verify', { type: 'boolean', describe: 'do not verify registry TLS certificates (unsafe)' })
    .option('docker-config', { type: 'string', describe: 'docker config.json for credentials [default: ~/.docker/config.json]' })
    .option('retry-budget', { type: 'string', describe: 'time allowed for one registry request incl. retries, e.g. 30s [default: 30s]' })
    .option('log-level', { type: 'string', describe: 'trace|debug|info|warn|error|silent [default: info]' })
    .option('index', { type: 'string', choices: ['auto', 'soci', 'none'], describe: 'SOCI index: auto = use one when the registry has it, soci = also warn when none, none = never look [default: auto]' });
}

const FLAG_KEYS = [
  'cacheDir', 'cacheSize', 'chunkSize', 'platform', 'insecure', 'caFile', 'skipVerify', 'dockerConfig', 'retryBudget', 'logLevel',
  'metrics', 'store', 'layerStore', 'prefetch', 'prefetchRate', 'index', 'allowOther', 'keepMounts', 'connections', 'control', 'idleTimeout',
] as const;

/** Picks the config keys out of parsed argv and loads the full configuration. */
export function configFromArgv(argv: Record<string, unknown>): Promise<RegfsConfig> {
  const raw: RawConfig = { config: argv['config'] as string | undefined };
  for (const k of FLAG_KEYS) if (argv[k] !== undefined) (raw as Record<string, unknown>)[k] = argv[k];
  return loadConfig(raw);
}
