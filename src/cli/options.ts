import type { Argv, Options } from 'yargs';
import { type RawConfig, loadConfig } from '../config/load.js';
import { type Command, type ConfigKey, type RegfsConfig, SCHEMA, envName, flagName } from '../config/schema.js';

const KEYS = Object.keys(SCHEMA) as ConfigKey[];

/** `[default: …]` for --help, from the same default the loader uses. */
function defaultText(k: ConfigKey): string {
  const spec: (typeof SCHEMA)[ConfigKey] = SCHEMA[k];
  if ('defaultHelp' in spec && spec.defaultHelp !== undefined) return ` [default: ${spec.defaultHelp}]`;
  if (!spec.optional && typeof spec.default !== 'function' && spec.default !== false) return ` [default: ${String(spec.default)}]`;
  return '';
}

/** The yargs options of `command`'s config keys, derived from the schema. */
export function configOptions(command: Command): Record<string, Options> {
  const out: Record<string, Options> = {};
  for (const k of KEYS) {
    const spec: (typeof SCHEMA)[ConfigKey] = SCHEMA[k];
    const flag = 'flag' in spec ? spec.flag : undefined;
    if (!flag || !flag.commands.includes(command)) continue;
    out[flagName(k)] = {
      type: flag.type,
      ...('array' in flag && flag.array ? { array: true } : {}),
      ...('choices' in flag && flag.choices ? { choices: [...flag.choices] } : {}),
      describe: `${spec.help}${defaultText(k)} (${envName(k)})`,
    };
  }
  return out;
}

/**
 * `--config` and every config key `command` offers as a flag (flag > env > file > default). The
 * flags come from the schema (config/schema.ts); a command adds only what is not configuration.
 */
export function withConfigOptions<T>(y: Argv<T>, command: Command) {
  return y
    .option('config', { type: 'string', describe: 'YAML or JSON config file (keys as the flags, camelCase) (REGFS_CONFIG)' })
    .options(configOptions(command));
}

/**
 * Picks the config keys out of parsed argv and loads and validates the full configuration: a
 * ConfigError names the first bad key. `mount --daemon` calls it before detaching.
 */
export function configFromArgv(argv: Record<string, unknown>): Promise<RegfsConfig> {
  const raw: RawConfig = { config: argv['config'] as string | undefined };
  for (const k of KEYS) if (argv[k] !== undefined) raw[k] = argv[k];
  return loadConfig(raw);
}
