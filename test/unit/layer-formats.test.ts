import { test } from 'node:test';
import assert from 'node:assert/strict';
import { builtinFormats } from '../../src/image/formats/builtin.js';
import { LayerFormatRegistry, PRIORITY, type LayerFormat } from '../../src/image/formats/registry.js';
import type { Layer, LayerDeps } from '../../src/image/layer.js';
import { parseDigest } from '../../src/lib/digest.js';
import { silentLogger } from '../../src/lib/logger.js';
import { CountingUpstream } from '../helpers/fake-upstream.js';

const GZIP = 'application/vnd.oci.image.layer.v1.tar+gzip';
const desc = { digest: parseDigest(`sha256:${'a'.repeat(64)}`), size: 100, mediaType: GZIP };

function deps(): LayerDeps {
  return { blobs: new CountingUpstream(), indexes: { load: async () => undefined, save: async () => {} }, spans: { get: () => undefined, set: () => {} }, log: silentLogger };
}

/** A format that records its calls and declines, opens, or fails as told. */
function fake(name: string, calls: string[], answer: 'decline' | 'open' | 'fail', accepts = true): LayerFormat {
  return {
    name,
    accepts: () => accepts,
    async open(d) {
      calls.push(name);
      if (answer === 'fail') throw new Error(`${name} failed`);
      if (answer === 'decline') return undefined;
      const layer: Layer = { descriptor: d, entries: async () => [], read: async () => 0 };
      return layer;
    },
  };
}

test('formats are tried by priority: toc declines, ztoc is not asked (accepts false), the cached index opens, the local pass is never asked', async () => {
  const calls: string[] = [];
  const reg = new LayerFormatRegistry()
    .register(fake('local', calls, 'open'), PRIORITY.localPass)
    .register(fake('cached', calls, 'open'), PRIORITY.cachedIndex)
    .register(fake('toc', calls, 'decline'), PRIORITY.toc)
    .register(fake('ztoc', calls, 'open', false), PRIORITY.ztoc);
  assert.deepEqual(reg.order, ['toc', 'ztoc', 'cached', 'local']);
  const layer = reg.open(desc, deps());
  assert.deepEqual(calls, [], 'nothing is opened before first use');
  await Promise.all([layer.entries(), layer.entries(), layer.read({} as never, 0, Buffer.alloc(1))]);
  assert.deepEqual(calls, ['toc', 'cached'], 'three concurrent first uses share one walk');
});

test('a format that fails does not fall through; the next use walks again', async () => {
  const calls: string[] = [];
  const reg = new LayerFormatRegistry().register(fake('toc', calls, 'fail'), PRIORITY.toc).register(fake('local', calls, 'open'), PRIORITY.localPass);
  const layer = reg.open(desc, deps());
  await assert.rejects(layer.entries(), /toc failed/);
  await assert.rejects(layer.entries(), /toc failed/);
  assert.deepEqual(calls, ['toc', 'toc']);
});

test('a layer no format takes is ERR_UNSUPPORTED_MEDIA_TYPE naming the media type', async () => {
  const layer = builtinFormats().open({ ...desc, mediaType: 'application/x-unknown' }, deps());
  await assert.rejects(layer.entries(), (e: Error & { code?: string }) => e.code === 'ERR_UNSUPPORTED_MEDIA_TYPE' && e.message.includes('"application/x-unknown"'));
});

test('built-in preference order: estargz, zstd:chunked, then a cached index, then the local pass', () => {
  assert.deepEqual(builtinFormats().order, ['estargz', 'zstd:chunked', 'index', 'local-pass']);
  assert.throws(() => builtinFormats().register(fake('estargz', [], 'open'), 1), /registered twice/);
});
