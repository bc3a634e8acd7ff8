import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseDigest } from '../../src/lib/digest.js';
import { sha256Digest } from '../../src/lib/hash.js';
import { candidatesForPlatform, parseManifestBody } from '../../src/registry/manifest.js';
import { referrersTag } from '../../src/registry/push.js';
import { SOCI_INDEX_V1, SOCI_INDEX_V2, buildSociIndex, parseSociIndex } from '../../src/registry/soci-index.js';

const d = (s: string) => parseDigest(sha256Digest(s));
const layer = { mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest: d('layer'), size: 123 };

test('SOCI index manifest: v1 names its subject, v2 has none; both parse back to zTOCs by layer digest with the span-size annotation', () => {
  const subject = { mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: d('manifest'), size: 456 };
  const v1 = buildSociIndex('v1', [{ layer, digest: d('ztoc'), size: 789, spanSize: 4 << 20 }], subject, 'regfs');
  const j = JSON.parse(v1.bytes.toString()) as Record<string, unknown> & { config: { mediaType: string; digest: string; size: number }; layers: { annotations: Record<string, string> }[] };
  assert.deepEqual(j.config, { mediaType: SOCI_INDEX_V1, digest: 'sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a', size: 2 });
  assert.deepEqual(j['subject'], subject);
  assert.deepEqual(j.layers[0]!.annotations, { 'com.amazon.soci.image-layer-mediaType': layer.mediaType, 'com.amazon.soci.image-layer-digest': layer.digest, 'com.amazon.soci.span-size': '4194304' });
  assert.equal(v1.descriptor.artifactType, SOCI_INDEX_V1);
  assert.equal(v1.descriptor.digest, sha256Digest(v1.bytes));
  const parsed = parseSociIndex(v1.bytes, v1.descriptor.digest);
  assert.deepEqual([parsed.version, parsed.buildTool, [...parsed.ztocs.keys()], parsed.ztocs.get(layer.digest)!.size], ['v1', 'regfs', [layer.digest], 789]);
  const v2 = buildSociIndex('v2', [{ layer, digest: d('ztoc'), size: 789, spanSize: 4 << 20 }], undefined, 'regfs');
  assert.equal('subject' in JSON.parse(v2.bytes.toString()), false);
  assert.equal(parseSociIndex(v2.bytes, v2.descriptor.digest).version, 'v2');
  // An image manifest is not a SOCI index.
  const plain = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json', config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: d('c'), size: 1 }, layers: [] }));
  assert.throws(() => parseSociIndex(plain, d('x')), /has config type application\/vnd.oci.image.config.v1\+json/);
});

test('a SOCI-enabled image index: the platform picks the image manifest, never the SOCI index entry with the same platform', () => {
  const platform = { os: 'linux', architecture: 'amd64' };
  const body = Buffer.from(JSON.stringify({
    schemaVersion: 2,
    mediaType: 'application/vnd.oci.image.index.v1+json',
    manifests: [
      { mediaType: 'application/vnd.oci.image.manifest.v1+json', artifactType: SOCI_INDEX_V2, digest: d('soci'), size: 10, platform },
      { mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: d('image'), size: 20, platform },
    ],
  }));
  const idx = parseManifestBody(body, undefined);
  assert.equal(idx.kind, 'index');
  if (idx.kind !== 'index') return;
  assert.equal(idx.manifests[0]!.artifactType, SOCI_INDEX_V2);
  assert.deepEqual(candidatesForPlatform(idx, () => true).map((m) => m.digest), [d('image')]);
  assert.equal(referrersTag(d('image')), `sha256-${d('image').slice(7)}`);
});
