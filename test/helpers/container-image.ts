import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmod, cp, mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { pushBlob, pushManifest } from './images.js';

const run = promisify(execFile);
const sha256 = (b: Buffer): string => `sha256:${createHash('sha256').update(b).digest('hex')}`;

export type LayerFormat = 'tar' | 'gzip' | 'estargz';

const MEDIA: Record<LayerFormat, string> = {
  tar: 'application/vnd.oci.image.layer.v1.tar',
  gzip: 'application/vnd.oci.image.layer.v1.tar+gzip',
  estargz: 'application/vnd.oci.image.layer.v1.tar+gzip',
};

export interface PushedLayer {
  digest: string;
  size: number;
  diffId: string;
  tocDigest?: string;
}

export interface RunnableImage {
  ref: string;
  manifestDigest: string;
  layers: PushedLayer[];
  /** Sum of the layer blob sizes. */
  bytes: number;
}

/** The binaries and libraries the container runs (from this Debian host), as `/bin` and `/lib`. */
const PROGRAMS = ['/bin/dash', '/bin/cat', '/bin/ls'];
const LIBS = ['/lib/x86_64-linux-gnu/libc.so.6', '/lib/x86_64-linux-gnu/libselinux.so.1', '/lib/x86_64-linux-gnu/libpcre2-8.so.0'];
/** Large real files (installed by scripts/setup.sh) that the commands never read. */
export const APP_FILES = ['/usr/bin/docker-registry', '/usr/bin/skopeo', '/usr/bin/podman'];

/**
 * Three layer trees from this machine's files:
 *   base: /bin/{sh,cat,ls}, their libraries, /etc/os-release, /etc/to-delete, /etc/passwd, empty /dev /proc /sys /tmp
 *   app:  /opt/app/* — ~70 MB of real binaries nothing reads
 *   top:  deletes /etc/to-delete (a whiteout), adds /etc/motd
 */
export async function stageLayers(workDir: string): Promise<string[]> {
  const base = join(workDir, 'stage-base');
  const app = join(workDir, 'stage-app');
  const top = join(workDir, 'stage-top');
  // dev, proc, sys, tmp: empty mount points, as distribution images carry them (bwrap and runtimes mount over them).
  for (const d of ['bin', 'lib/x86_64-linux-gnu', 'lib64', 'etc', 'dev', 'proc', 'sys', 'tmp']) await mkdir(join(base, d), { recursive: true });
  await chmod(join(base, 'tmp'), 0o1777);
  await cp(PROGRAMS[0]!, join(base, 'bin/sh'));
  for (const p of PROGRAMS.slice(1)) await cp(p, join(base, 'bin', p.split('/').pop()!));
  for (const l of LIBS) await cp(l, join(base, l), { dereference: true });
  await cp('/lib64/ld-linux-x86-64.so.2', join(base, 'lib64/ld-linux-x86-64.so.2'), { dereference: true });
  await cp('/etc/os-release', join(base, 'etc/os-release'), { dereference: true });
  await writeFile(join(base, 'etc/to-delete'), 'deleted by the top layer\n');
  await writeFile(join(base, 'etc/passwd'), 'root:x:0:0:root:/root:/bin/sh\n');
  await writeFile(join(base, 'etc/group'), 'root:x:0:\n');
  await mkdir(join(app, 'opt/app'), { recursive: true });
  for (const f of APP_FILES) await cp(f, join(app, 'opt/app', f.split('/').pop()!));
  await mkdir(join(top, 'etc'), { recursive: true });
  await writeFile(join(top, 'etc/.wh.to-delete'), '');
  await writeFile(join(top, 'etc/motd'), 'layer three\n');
  return [base, app, top];
}

/** One layer blob of `format` from a staged tree (GNU tar; gzip; the reference eStargz converter). */
async function layerBlob(stage: string, format: LayerFormat, workDir: string, convert: string | undefined): Promise<{ blob: Buffer; diffId: string; tocDigest?: string }> {
  const tarPath = `${stage}.tar`;
  await run('tar', ['cf', tarPath, '-C', stage, '--numeric-owner', '--owner=0', '--group=0', '.']);
  const tar = await readFile(tarPath);
  if (format === 'tar') return { blob: tar, diffId: sha256(tar) };
  if (format === 'gzip') {
    const { stdout } = await run('gzip', ['-n', '-c', tarPath], { encoding: 'buffer', maxBuffer: 1 << 30 });
    return { blob: stdout, diffId: sha256(tar) };
  }
  if (!convert) throw new Error('eStargz needs the converter (scripts/build-estargz-convert.sh)');
  const out = join(workDir, `${stage.split('/').pop()}.esgz`);
  const { stdout } = await run(convert, [tarPath, out]);
  const meta = JSON.parse(stdout) as { tocDigest: string; diffID: string };
  return { blob: await readFile(out), diffId: meta.diffID, tocDigest: meta.tocDigest };
}

/** Pushes the staged layers as one image in `format`, with a config whose diff_ids are right. */
export async function pushStagedImage(
  registryUrl: string,
  registryHost: string,
  repo: string,
  stages: string[],
  format: LayerFormat,
  workDir: string,
  convert?: string,
): Promise<RunnableImage> {
  const layers: PushedLayer[] = [];
  const descs = [];
  for (const stage of stages) {
    const { blob, diffId, tocDigest } = await layerBlob(stage, format, workDir, convert);
    const digest = await pushBlob(registryUrl, repo, blob);
    layers.push({ digest, size: blob.length, diffId, ...(tocDigest ? { tocDigest } : {}) });
    descs.push({ mediaType: MEDIA[format], digest, size: blob.length, ...(tocDigest ? { annotations: { 'containerd.io/snapshot/stargz/toc.digest': tocDigest } } : {}) });
  }
  const config = Buffer.from(
    JSON.stringify({
      architecture: 'amd64',
      os: 'linux',
      created: '2026-01-02T03:04:05Z',
      config: { Env: ['PATH=/bin'], Cmd: ['/bin/sh'] },
      rootfs: { type: 'layers', diff_ids: layers.map((l) => l.diffId) },
      history: stages.map(() => ({ created: '2026-01-02T03:04:05Z', created_by: 'regfs test' })),
    }),
  );
  const configDesc = { mediaType: 'application/vnd.oci.image.config.v1+json', digest: await pushBlob(registryUrl, repo, config), size: config.length };
  const manifest = JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json', config: configDesc, layers: descs });
  const manifestDigest = await pushManifest(registryUrl, repo, format, manifest, 'application/vnd.oci.image.manifest.v1+json');
  return { ref: `${registryHost}/${repo}:${format}`, manifestDigest, layers, bytes: layers.reduce((n, l) => n + l.size, 0) };
}
