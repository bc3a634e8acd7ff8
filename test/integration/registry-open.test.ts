import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createHash, randomInt } from 'node:crypto';
import { mkdir, readFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { parseDigest } from '../../src/lib/digest.js';
import { createBlobFetcher, parseReference, resolveImage, hostPlatform } from '../../src/registry/index.js';
import { makeRegistry } from '../helpers/client.js';
import { buildSmallImage } from '../helpers/fixture-image.js';
import { type BuiltImage, blobPath, pushImage } from '../helpers/images.js';
import { type RunningRegistry, startRegistry } from '../helpers/registry.js';
import { tempDir } from '../helpers/tmp.js';

const run = promisify(execFile);
const CLI = join(import.meta.dirname, '../../../dist/cli/main.js');

let dir: { path: string; cleanup: () => Promise<void> };
let reg: RunningRegistry;
let image: BuiltImage;

before(async () => {
  dir = await tempDir('open');
  reg = await startRegistry({ root: join(dir.path, 'storage'), workDir: dir.path });
  image = await buildSmallImage(dir.path);
  await pushImage(image, reg.host, 'test/small');
});

after(async () => {
  await reg?.stop();
  await dir?.cleanup();
});

test('regfs blob of each layer hashes to its digest', async () => {
  assert.equal(image.layers.length, 2);
  for (const layer of image.layers) {
    const { stdout } = await run('sh', ['-c', `node ${CLI} blob ${reg.host}/test/small:latest ${layer.digest} --cache-dir ${join(dir.path, 'cache')} --log-level warn | sha256sum`]);
    assert.equal(`sha256:${stdout.split(' ')[0]}`, layer.digest);
  }
});

test('regfs inspect prints the manifest and config of the pushed image', async () => {
  const { stdout } = await run('node', [CLI, 'inspect', `${reg.host}/test/small`, '--log-level', 'warn', '--cache-dir', join(dir.path, 'cache')]);
  const out = JSON.parse(stdout) as { manifestDigest: string; manifest: { layers: { digest: string }[] }; config: { rootfs: { diff_ids: string[] } } };
  assert.equal(out.manifestDigest, image.manifestDigest);
  assert.deepEqual(out.manifest.layers.map((l) => l.digest), image.layers.map((l) => l.digest));
  assert.equal(out.config.rootfs.diff_ids.length, 2);
});

test('a reference pinned to the manifest digest resolves and is verified', async () => {
  const { registry } = makeRegistry();
  try {
    const img = await resolveImage(registry.client, parseReference(`${reg.host}/test/small@${image.manifestDigest}`), hostPlatform());
    assert.equal(img.manifestDigest, image.manifestDigest);
    assert.equal(img.manifest.layers.length, 2);
    await assert.rejects(
      resolveImage(registry.client, parseReference(`${reg.host}/test/small:nosuchtag`), hostPlatform()),
      (e: Error & { code: string }) => e.code === 'ERR_NOT_FOUND' && /nosuchtag/.test(e.message),
    );
  } finally {
    await registry.close();
  }
});

test('1000 random ranges equal the bytes of the local layout', async () => {
  const { registry, counted } = makeRegistry();
  try {
    const fetcher = createBlobFetcher(registry.client, { endpoint: reg.host, repository: 'test/small' });
    const layer = image.layers[0]!;
    const local = await readFile(blobPath(image.layout, layer.digest));
    const d = parseDigest(layer.digest);
    assert.equal(await fetcher.size(d), local.length);
    const jobs = Array.from({ length: 1000 }, () => {
      const off = randomInt(0, local.length);
      const len = randomInt(1, Math.min(256 * 1024, local.length - off) + 1);
      return { off, len };
    });
    // 16 at a time: the pool has 16 connections.
    for (let i = 0; i < jobs.length; i += 16) {
      await Promise.all(
        jobs.slice(i, i + 16).map(async ({ off, len }) => {
          const buf = Buffer.alloc(len);
          const n = await fetcher.readAt(d, off, buf);
          assert.equal(n, len);
          assert.ok(buf.equals(local.subarray(off, off + len)), `range ${off}+${len}`);
        }),
      );
    }
    // A read past the end is short, at the end only.
    const tail = Buffer.alloc(100);
    assert.equal(await fetcher.readAt(d, local.length - 10, tail), 10);
    assert.ok(tail.subarray(0, 10).equals(local.subarray(-10)));
    assert.equal(await fetcher.readAt(d, local.length, tail), 0);
    assert.equal(counted.tokens, 0, 'an open registry needs no token');
    assert.ok(createHash('sha256').update(local).digest('hex') === layer.digest.slice(7));
  } finally {
    await registry.close();
  }
});

test('a blob that does not exist fails at once, naming the digest', async () => {
  const { stderr, code } = await run('node', [CLI, 'blob', `${reg.host}/test/small`, `sha256:${'0'.repeat(64)}`, '--cache-dir', join(dir.path, 'cache')]).then(
    () => ({ stderr: '', code: 0 }),
    (e: { stderr: string; code: number }) => e,
  );
  assert.equal(code, 1);
  assert.match(stderr, new RegExp(`blob sha256:${'0'.repeat(64)} not found`));
});

test('a docker-registry that cannot start (its port is taken) fails startRegistry in < 5 s with "exited", not a 20 s timeout', async () => {
  // A listener that is no registry (it hangs up on every connection): the new registry cannot bind.
  const squatter = createServer((s) => s.destroy());
  await new Promise<void>((r) => squatter.listen(0, '127.0.0.1', r));
  const port = (squatter.address() as { port: number }).port;
  const work = join(dir.path, 'squatted');
  await mkdir(work, { recursive: true });
  const t0 = Date.now();
  try {
    await assert.rejects(startRegistry({ root: join(dir.path, 'storage'), workDir: work, port }), /docker-registry exited; see /);
    assert.ok(Date.now() - t0 < 5000, `took ${Date.now() - t0} ms`);
  } finally {
    await new Promise((r) => squatter.close(r));
  }
});
