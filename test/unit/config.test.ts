import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { loadConfig } from '../../src/config/load.js';
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
