import { execFile } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, readFile, writeFile, cp, symlink } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

export interface BuiltImage {
  layout: string;
  tag: string;
  manifestDigest: string;
  layers: { digest: string; size: number; mediaType: string }[];
  config: { digest: string; size: number };
}

export type LayerSpec = (rootfs: string) => Promise<void>;

/**
 * Builds an OCI image layout with umoci, one layer per spec (each spec edits the rootfs; umoci
 * records additions and deletions as whiteouts).
 */
export async function buildImage(workDir: string, name: string, layers: LayerSpec[]): Promise<BuiltImage> {
  const layout = join(workDir, `${name}-layout`);
  const bundle = join(workDir, `${name}-bundle`);
  const tag = 'latest';
  await run('umoci', ['init', '--layout', layout]);
  await run('umoci', ['new', '--image', `${layout}:${tag}`]);
  for (const spec of layers) {
    await run('umoci', ['unpack', '--image', `${layout}:${tag}`, bundle]);
    await spec(join(bundle, 'rootfs'));
    await run('umoci', ['repack', '--image', `${layout}:${tag}`, bundle]);
    await run('rm', ['-rf', bundle]);
  }
  return describeLayout(layout, tag);
}

export async function describeLayout(layout: string, tag: string): Promise<BuiltImage> {
  const index = JSON.parse(await readFile(join(layout, 'index.json'), 'utf8')) as { manifests: { digest: string; annotations?: Record<string, string> }[] };
  const desc = index.manifests.find((m) => m.annotations?.['org.opencontainers.image.ref.name'] === tag) ?? index.manifests[0]!;
  const manifest = JSON.parse(await readFile(blobPath(layout, desc.digest), 'utf8')) as BuiltImage & { layers: BuiltImage['layers'] };
  return { layout, tag, manifestDigest: desc.digest, layers: manifest.layers, config: manifest.config };
}

export function blobPath(layout: string, digest: string): string {
  return join(layout, 'blobs', 'sha256', digest.slice('sha256:'.length));
}

/** skopeo copy of an OCI layout to a loopback registry over plain HTTP. */
export async function pushImage(image: BuiltImage, registryHost: string, repo: string, tag = 'latest'): Promise<void> {
  await run('skopeo', ['copy', '--quiet', '--dest-tls-verify=false', `oci:${image.layout}:${image.tag}`, `docker://${registryHost}/${repo}:${tag}`], {
    maxBuffer: 16 << 20,
  });
}

/** Uploads raw bytes as a blob with the distribution API (monolithic POST+PUT). */
export async function pushBlob(registryUrl: string, repo: string, data: Uint8Array): Promise<string> {
  const digest = `sha256:${createHash('sha256').update(data).digest('hex')}`;
  const start = await fetch(`${registryUrl}/v2/${repo}/blobs/uploads/`, { method: 'POST' });
  await start.arrayBuffer();
  if (start.status !== 202) throw new Error(`upload start: HTTP ${start.status}`);
  const loc = new URL(start.headers.get('location')!, registryUrl);
  loc.searchParams.set('digest', digest);
  const put = await fetch(loc, { method: 'PUT', body: Buffer.from(data), headers: { 'content-type': 'application/octet-stream' } });
  await put.arrayBuffer();
  if (put.status !== 201) throw new Error(`upload put: HTTP ${put.status}`);
  return digest;
}

/** Uploads a manifest document (any media type) under a tag or digest. */
export async function pushManifest(registryUrl: string, repo: string, ref: string, body: string, mediaType: string): Promise<string> {
  const res = await fetch(`${registryUrl}/v2/${repo}/manifests/${ref}`, { method: 'PUT', body, headers: { 'content-type': mediaType } });
  const text = await res.text();
  if (res.status !== 201) throw new Error(`manifest put: HTTP ${res.status} ${text}`);
  return `sha256:${createHash('sha256').update(body).digest('hex')}`;
}

/** Deterministic pseudo-random content (xorshift32): tests compare against it without storing it. */
export function patternBytes(size: number, seed: number): Buffer {
  const words = new Uint32Array(Math.ceil(size / 4));
  let x = seed >>> 0 || 1;
  for (let i = 0; i < words.length; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    words[i] = x >>> 0;
  }
  return Buffer.from(words.buffer, 0, size);
}

export { randomBytes, writeFile, mkdir, cp, symlink };

/**
 * Pushes an image whose layers are the given bytes as-is (no tar inside): enough for the blob
 * layout and for large-blob tests, where building a real 100 MB layer would only cost time.
 */
export async function pushRawImage(
  registryUrl: string,
  repo: string,
  tag: string,
  layers: (Buffer | { data: Buffer; mediaType: string; annotations?: Record<string, string> })[],
): Promise<{ manifestDigest: string; layers: { digest: string; size: number }[]; config: { digest: string; size: number } }> {
  const descs = [];
  for (const l of layers) {
    const { data, mediaType, annotations } = Buffer.isBuffer(l) ? { data: l, mediaType: 'application/vnd.oci.image.layer.v1.tar', annotations: undefined } : l;
    descs.push({ mediaType, digest: await pushBlob(registryUrl, repo, data), size: data.length, ...(annotations ? { annotations } : {}) });
  }
  const config = Buffer.from(
    JSON.stringify({ architecture: 'amd64', os: 'linux', created: '2026-01-02T03:04:05Z', rootfs: { type: 'layers', diff_ids: descs.map((d) => d.digest) }, config: {} }),
  );
  const configDesc = { mediaType: 'application/vnd.oci.image.config.v1+json', digest: await pushBlob(registryUrl, repo, config), size: config.length };
  const manifest = JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json', config: configDesc, layers: descs });
  const manifestDigest = await pushManifest(registryUrl, repo, tag, manifest, 'application/vnd.oci.image.manifest.v1+json');
  return { manifestDigest, layers: descs, config: configDesc };
}
