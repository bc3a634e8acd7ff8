import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseManifestBody, candidatesForPlatform } from '../../src/registry/manifest.js';
import { platformMatches } from '../../src/registry/platform.js';

const D = (c: string): string => `sha256:${c.repeat(64)}`;
const enc = (o: unknown): Buffer => Buffer.from(typeof o === 'string' ? o : JSON.stringify(o));
const manifest = (layers: unknown[]): unknown => ({
  schemaVersion: 2,
  mediaType: 'application/vnd.oci.image.manifest.v1+json',
  config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: D('c'), size: 10 },
  layers,
});
const layer = { mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest: D('1'), size: 100 };

test('a valid manifest parses', () => {
  const m = parseManifestBody(enc(manifest([layer])), undefined);
  assert.equal(m.kind, 'manifest');
  assert.equal(m.kind === 'manifest' && m.layers[0]!.size, 100);
});

test('hostile manifests get clear errors', () => {
  const table: [unknown, RegExp][] = [
    ['{not json', /not valid JSON/],
    ['[]', /must be a JSON object/],
    [{ schemaVersion: 1, name: 'x' }, /schema 1/],
    [{ schemaVersion: 3 }, /schemaVersion must be 2/],
    [{ schemaVersion: 2, mediaType: 'application/vnd.foo' }, /unsupported manifest media type "application\/vnd.foo"/],
    [manifest([{ ...layer, size: -1 }]), /layers\[0\].size must be a non-negative integer/],
    [manifest([{ ...layer, size: 1e300 }]), /layers\[0\].size/],
    [manifest([{ ...layer, size: '12' }]), /layers\[0\].size/],
    [manifest([{ ...layer, digest: 'md5:abc' }]), /layers\[0\].digest.*unsupported algorithm/],
    [manifest([{ ...layer, digest: 'sha256:abc' }]), /layers\[0\].digest.*64 hex/],
    [manifest(Array.from({ length: 10_000 }, () => layer)), /10000 layers; refusing more than 1000/],
    [{ ...(manifest([]) as object), layers: 'x' }, /layers must be an array/],
    [{ ...(manifest([]) as object), config: null }, /config must be an object/],
  ];
  for (const [body, re] of table) assert.throws(() => parseManifestBody(enc(body), undefined), re, JSON.stringify(body).slice(0, 80));
});

test('index platform selection skips attestations and matches variants', () => {
  const idx = parseManifestBody(
    enc({
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.index.v1+json',
      manifests: [
        { mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: D('a'), size: 1, platform: { os: 'unknown', architecture: 'unknown' } },
        { mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: D('b'), size: 1, platform: { os: 'linux', architecture: 'arm', variant: 'v6' } },
        { mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: D('d'), size: 1, platform: { os: 'linux', architecture: 'arm', variant: 'v7' } },
        { mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: D('e'), size: 1, platform: { os: 'linux', architecture: 'arm64' } },
        { mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: D('f'), size: 1, platform: { os: 'linux', architecture: 'amd64' }, annotations: { 'vnd.docker.reference.type': 'attestation-manifest' } },
      ],
    }),
    undefined,
  );
  assert.equal(idx.kind, 'index');
  if (idx.kind !== 'index') return;
  const pick = (os: string, architecture: string, variant?: string): string[] =>
    candidatesForPlatform(idx, (p) => platformMatches({ os, architecture, variant }, p)).map((d) => d.digest);
  assert.deepEqual(pick('linux', 'arm', 'v7'), [D('d')]);
  assert.deepEqual(pick('linux', 'arm64', 'v8'), [D('e')]);
  assert.deepEqual(pick('linux', 'amd64'), []);
});
