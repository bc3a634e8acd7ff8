import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import yargs from 'yargs';
import { configFromArgv, configOptions, withConfigOptions } from '../../src/cli/options.js';
import { type RawConfig, loadConfig } from '../../src/config/load.js';
import { type Command, type ConfigKey, type RegfsConfig, SCHEMA, envName, flagName } from '../../src/config/schema.js';
import { tempDir } from '../helpers/tmp.js';

test('precedence: flag > env > file > default', async () => {
  const t = await tempDir('cfg');
  try {
    const file = join(t.path, 'c.yaml');
    await writeFile(file, 'cacheSize: 1GiB\nchunkSize: 256KiB\nlogLevel: debug\nregistries:\n  r.example:5000:\n    insecure: true\n    mirrors: ["https://m.example"]\n');
    const env = { HOME: '/home/x', REGFS_CHUNK_SIZE: '2MiB', REGFS_LOG_LEVEL: 'warn' };
    const cfg = await loadConfig({ config: file, logLevel: 'error' }, env, false);
    assert.equal(cfg.cacheSize, 1 << 30, 'from the file');
    assert.equal(cfg.chunkSize, 2 << 20, 'env beats the file');
    assert.equal(cfg.logLevel, 'error', 'the flag beats env');
    assert.equal(cfg.cacheDir, '/home/x/.cache/regfs', 'default for non-root');
    assert.equal(cfg.registries['r.example:5000']?.insecure, true);
    assert.deepEqual(cfg.registries['r.example:5000']?.mirrors, ['https://m.example']);
    assert.equal(Object.isFrozen(cfg), true);
    assert.equal((await loadConfig({}, {}, true)).cacheDir, '/var/cache/regfs');
    const json = join(t.path, 'c.json');
    await writeFile(json, JSON.stringify({ cacheSize: '5MiB', retryBudget: '2s' }));
    const j = await loadConfig({ config: json }, {}, true);
    assert.equal(j.cacheSize, 5 << 20);
    assert.equal(j.retryBudget, 2000);
  } finally {
    await t.cleanup();
  }
});

test('bad config gets errors that name the key', async () => {
  const t = await tempDir('cfg-bad');
  try {
    const cases: [string, RegExp][] = [
      ['cacheSiz: 1GiB', /unknown key "cacheSiz" in config file/],
      ['chunkSize: 3MiB', /chunkSize must be a power of two/],
      ['cacheSize: lots', /cacheSize must be a size/],
      ['registries:\n  h:\n    insecur: true', /unknown key registries\.h\.insecur/],
      ['registries:\n  h:\n    mirrors: ["ftp://x"]', /registries\.h\.mirrors entries must be http/],
      ['metrics: nowhere', /metrics must be HOST:PORT or unix:PATH/],
      ['registries:\n  h:\n    connections: 0', /registries\.h\.connections must be an integer in 1…256/],
      ['- a\n- b', /must hold a mapping/],
      ['a: [', /not valid YAML/],
    ];
    for (const [text, re] of cases) {
      const f = join(t.path, 'bad.yaml');
      await writeFile(f, text);
      await assert.rejects(loadConfig({ config: f }, {}, true), re, text);
    }
    await assert.rejects(loadConfig({}, { REGFS_CACHE_SIZE: 'x' }, true), /REGFS_CACHE_SIZE must be a size/);
    await assert.rejects(loadConfig({ platform: 'linux' }, {}, true), /--platform must be os\/architecture/);
    await assert.rejects(loadConfig({ config: join(t.path, 'missing.yaml') }, {}, true), /cannot read config file/);
  } finally {
    await t.cleanup();
  }
});

/** Three distinct valid values per key (as a user writes them) and what each one parses to. */
const SAMPLES: Record<ConfigKey, [string, unknown][]> = {
  cacheDir: [['/c/file', '/c/file'], ['/c/env', '/c/env'], ['/c/flag', '/c/flag']],
  cacheSize: [['1GiB', 2 ** 30], ['512MiB', 2 ** 29], ['64k', 64_000]],
  chunkSize: [['256KiB', 2 ** 18], ['2MiB', 2 ** 21], ['64KiB', 2 ** 16]],
  platform: [['linux/arm64', 'linux/arm64'], ['linux/arm/v7', 'linux/arm/v7'], ['linux/amd64', 'linux/amd64']],
  logLevel: [['debug', 'debug'], ['warn', 'warn'], ['error', 'error']],
  metrics: [['127.0.0.1:9100', '127.0.0.1:9100'], ['unix:/run/m.sock', 'unix:/run/m.sock'], [':9200', ':9200']],
  store: [['/s/file', '/s/file'], ['/s/env', '/s/env'], ['/s/flag', '/s/flag']],
  layerStore: [['/l/file', '/l/file'], ['/l/env', '/l/env'], ['/l/flag', '/l/flag']],
  registries: [],
  dockerConfig: [['/d/file.json', '/d/file.json'], ['/d/env.json', '/d/env.json'], ['/d/flag.json', '/d/flag.json']],
  insecure: [['a:5000', ['a:5000']], ['b:5000,c:5000', ['b:5000', 'c:5000']], ['d', ['d']]],
  caFile: [['/ca/file.pem', '/ca/file.pem'], ['/ca/env.pem', '/ca/env.pem'], ['/ca/flag.pem', '/ca/flag.pem']],
  skipVerify: [['true', true], ['false', false], ['1', true]],
  retryBudget: [['2m', 120_000], ['500ms', 500], ['45', 45_000]],
  connections: [['4', 4], ['256', 256], ['1', 1]],
  prefetch: [['all', 'all'], ['none', 'none'], ['all', 'all']],
  prefetchRate: [['20MiB', 20 * 2 ** 20], ['1MiB', 2 ** 20], ['0', 0]],
  index: [['soci', 'soci'], ['none', 'none'], ['auto', 'auto']],
  profileRecord: [['2m', 120_000], ['0', 0], ['30s', 30_000]],
  profileReplay: [['local', 'local'], ['none', 'none'], ['auto', 'auto']],
  allowOther: [['true', true], ['false', false], ['true', true]],
  keepMounts: [['1', true], ['0', false], ['true', true]],
  control: [['/ctl/file', '/ctl/file'], ['/ctl/env', '/ctl/env'], ['/ctl/flag', '/ctl/flag']],
  idleTimeout: [['90s', 90_000], ['2m', 120_000], ['1500ms', 1500]],
};

test('every schema key, one by one: flag beats env beats file, each value parsed once by the key\'s parser', async () => {
  assert.deepEqual(Object.keys(SAMPLES).sort(), Object.keys(SCHEMA).sort(), 'a sample row for every key');
  const t = await tempDir('cfg-each');
  try {
    for (const [key, samples] of Object.entries(SAMPLES) as [ConfigKey, [string, unknown][]][]) {
      if (samples.length === 0) continue; // registries: a structure, file only (tested above)
      const [[fileText, fileValue], [envText, envValue], [flagText, flagValue]] = samples as [[string, unknown], [string, unknown], [string, unknown]];
      const file = join(t.path, `${key}.json`);
      await writeFile(file, JSON.stringify({ [key]: fileText }));
      const env = { [envName(key)]: envText };
      assert.deepEqual((await loadConfig({ config: file }, {}, false))[key], fileValue, `${key} from the file`);
      assert.deepEqual((await loadConfig({ config: file }, env, false))[key], envValue, `${envName(key)} beats the file`);
      assert.deepEqual((await loadConfig({ config: file, [key]: flagText }, env, false))[key], flagValue, `--${flagName(key)} beats ${envName(key)}`);
    }
  } finally {
    await t.cleanup();
  }
});

test('defaults: each --help [default: …] is what the loader gives; control follows cacheDir', async () => {
  const cfg = await loadConfig({}, { HOME: '/home/u' }, false);
  let checked = 0;
  for (const [key, opts] of Object.entries(configOptions('mount'))) {
    const m = / \[default: ([^\]]+)\]/.exec(String(opts.describe));
    const k = Object.keys(SCHEMA).find((x) => flagName(x) === key) as ConfigKey;
    if (!m || 'defaultHelp' in SCHEMA[k]) continue; // computed defaults are described in words
    const spec = SCHEMA[k] as { parse: (v: unknown, n: string) => unknown };
    assert.deepEqual(cfg[k], spec.parse(m[1], k), `--${key}: help says ${m[1]}`);
    checked++;
  }
  assert.equal(checked, 9, 'cache-size, chunk-size, log-level, retry-budget, connections, prefetch, profile-record, profile-replay, index');
  assert.equal(cfg.control, '/home/u/.cache/regfs/control.sock');
  assert.equal((await loadConfig({ cacheDir: '/elsewhere' }, {}, false)).control, '/elsewhere/control.sock');
  assert.equal(cfg.dockerConfig, '/home/u/.docker/config.json');
  assert.equal((await loadConfig({}, { HOME: '/home/u', DOCKER_CONFIG: '/dc', XDG_CACHE_HOME: '/xdg' }, false)).dockerConfig, '/dc/config.json');
  assert.equal((await loadConfig({}, { XDG_CACHE_HOME: '/xdg' }, false)).cacheDir, '/xdg/regfs');
  assert.deepEqual(cfg.registries, {});
  assert.deepEqual(cfg.insecure, []);
  assert.equal(cfg.platform, undefined);
});

test('unknown keys are errors naming the key, from flags as from the file; unrelated REGFS_* variables are ignored', async () => {
  await assert.rejects(loadConfig({ cacheSiz: '1GiB' } as RawConfig, {}, true), /unknown key "cacheSiz" in flags/);
  const cfg = await loadConfig({}, { REGFS_TEST_RUN: '1', REGFS_LOAD_SECONDS: '10' }, true);
  assert.equal(cfg.cacheDir, '/var/cache/regfs');
  // registries has no one-line form: REGFS_REGISTRIES is not read.
  assert.deepEqual((await loadConfig({}, { REGFS_REGISTRIES: '{"h":{}}' }, true)).registries, {});
  await assert.rejects(loadConfig({}, { REGFS_RETRY_BUDGET: 'soon' }, true), /REGFS_RETRY_BUDGET must be a duration/);
  await assert.rejects(loadConfig({ connections: '0' }, {}, true), /--connections must be an integer in 1…256/);
  await assert.rejects(loadConfig({ idleTimeout: '-1s' }, {}, true), /--idle-timeout must be a duration/);
});

test('flags through yargs: every flag regfs had is still offered, repeated --insecure, booleans, strings parsed by the schema', async () => {
  const before: Record<string, string[]> = {
    mount: ['cache-dir', 'cache-size', 'chunk-size', 'platform', 'insecure', 'ca-file', 'skip-verify', 'docker-config', 'retry-budget', 'log-level', 'index', 'metrics', 'prefetch', 'prefetch-rate', 'allow-other'],
    serve: ['cache-dir', 'cache-size', 'chunk-size', 'platform', 'insecure', 'ca-file', 'skip-verify', 'docker-config', 'retry-budget', 'log-level', 'index', 'store', 'layer-store', 'metrics', 'control', 'allow-other'],
    ctl: ['cache-dir', 'log-level', 'index', 'control'],
    inspect: ['cache-dir', 'platform', 'insecure', 'retry-budget', 'index'],
    blob: ['cache-dir', 'platform', 'insecure', 'retry-budget', 'index'],
    cache: ['cache-dir', 'chunk-size', 'index'],
    index: ['cache-dir', 'platform', 'insecure', 'retry-budget', 'index'],
  };
  for (const [cmd, flags] of Object.entries(before)) {
    const offered = Object.keys(configOptions(cmd as Command));
    for (const f of flags) assert.ok(offered.includes(f), `regfs ${cmd} --${f}`);
  }
  const argv = await withConfigOptions(yargs([]), 'mount')
    .strict()
    .parseAsync(['--insecure', 'a:5000', '--insecure', 'b:5000', '--skip-verify', '--cache-size', '1GiB', '--retry-budget', '2s', '--prefetch', 'all']);
  const cfg = await configFromArgv(argv as Record<string, unknown>);
  assert.deepEqual(cfg.insecure, ['a:5000', 'b:5000']);
  assert.equal(cfg.skipVerify, true);
  assert.equal(cfg.cacheSize, 2 ** 30);
  assert.equal(cfg.retryBudget, 2000);
  assert.equal(cfg.prefetch, 'all');
  assert.equal(cfg.allowOther, false, 'a boolean flag not given keeps its default');
  await assert.rejects(async () => withConfigOptions(yargs([]), 'mount').strict().fail((msg) => { throw new Error(msg); }).parseAsync(['--store', '/s']), /Unknown argument: store/);
});

// Compile-time: the config type is derived from the parsers (a wrong type fails `npm run build:test`).
type Eq<A, B> = (<X>() => X extends A ? 1 : 2) extends <X>() => X extends B ? 1 : 2 ? true : false;
const typeChecks: [
  Eq<RegfsConfig['cacheSize'], number>,
  Eq<RegfsConfig['platform'], string | undefined>,
  Eq<RegfsConfig['logLevel'], 'trace' | 'debug' | 'info' | 'warn' | 'error' | 'silent'>,
  Eq<RegfsConfig['insecure'], readonly string[]>,
  Eq<RegfsConfig['control'], string>,
  Eq<NonNullable<RegfsConfig['registries'][string]>['connections'], number | undefined>,
] = [true, true, true, true, true, true];
void typeChecks;
