import { execFile } from 'node:child_process';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

export interface Podman {
  graphroot: string;
  /** Runs podman with this test's own configuration; rejects with stderr on failure. */
  run(args: string[]): Promise<{ stdout: string; stderr: string }>;
  /** Removes every container and image, then unmounts what podman left under its dirs. */
  cleanup(): Promise<void>;
}

/**
 * Debian 12's podman (4.3.1) with its own storage.conf, containers.conf, registries.conf and
 * policy.json under `dir`, never the host's. What this kind of machine (and CI) needs, each
 * measured here:
 *   - runtime runc: crun fails with "cgroups in hybrid mode not supported";
 *   - cgroup manager cgroupfs and the file events logger: no systemd session or journald needed;
 *   - nofile/nproc ulimits below the hard limits: the container cannot raise them without CAP_SYS_RESOURCE;
 *   - netns none: no CNI/netavark setup (the tests need no network inside the container);
 *   - tmp_dir under `dir`: podman's runtime state stays out of the host's /run/libpod.
 */
export async function setupPodman(dir: string, opts: { insecureRegistry: string; layerStore?: string }): Promise<Podman> {
  const graphroot = join(dir, 'graph');
  const runroot = join(dir, 'run');
  const tmp = join(dir, 'tmp');
  for (const d of [graphroot, runroot, tmp]) await mkdir(d, { recursive: true });
  const storageConf = join(dir, 'storage.conf');
  const containersConf = join(dir, 'containers.conf');
  const registriesConf = join(dir, 'registries.conf');
  const policy = join(dir, 'policy.json');
  await writeFile(
    storageConf,
    [
      '[storage]',
      'driver = "overlay"',
      `graphroot = "${graphroot}"`,
      `runroot = "${runroot}"`,
      '[storage.options]',
      // The line the README documents: containers/storage asks the store before it pulls a layer.
      ...(opts.layerStore ? [`additionallayerstores = ["${opts.layerStore}:ref"]`] : []),
      '',
    ].join('\n'),
  );
  await writeFile(
    containersConf,
    [
      '[containers]',
      'default_ulimits = ["nofile=1024:1024", "nproc=1024:1024"]',
      'netns = "none"',
      '[engine]',
      'runtime = "runc"',
      'cgroup_manager = "cgroupfs"',
      'events_logger = "file"',
      `events_logfile_path = "${join(dir, 'events.log')}"`,
      `tmp_dir = "${tmp}"`,
      '',
    ].join('\n'),
  );
  await writeFile(registriesConf, ['unqualified-search-registries = []', '[[registry]]', `location = "${opts.insecureRegistry}"`, 'insecure = true', ''].join('\n'));
  await writeFile(policy, JSON.stringify({ default: [{ type: 'insecureAcceptAnything' }] }));
  const env = { ...process.env, CONTAINERS_STORAGE_CONF: storageConf, CONTAINERS_CONF: containersConf, CONTAINERS_REGISTRIES_CONF: registriesConf };
  const podman = async (args: string[]): Promise<{ stdout: string; stderr: string }> => {
    // --signature-policy: the pull's trust policy is this test's file, not /etc/containers/policy.json.
    const full = args[0] === 'pull' ? ['pull', '--signature-policy', policy, ...args.slice(1)] : args;
    try {
      return await run('podman', full, { env, maxBuffer: 16 << 20 });
    } catch (e) {
      const err = e as Error & { stderr?: string };
      throw new Error(`podman ${full.join(' ')} failed: ${err.stderr ?? err.message}`);
    }
  };
  return {
    graphroot,
    run: podman,
    cleanup: async () => {
      await podman(['rm', '-a', '-f']).catch(() => {});
      await podman(['rmi', '-a', '-f']).catch(() => {});
      const mounts = (await readFile('/proc/self/mountinfo', 'utf8')).split('\n').map((l) => l.split(' ')[4] ?? '');
      for (const m of mounts.filter((p) => p.startsWith(`${dir}/`)).reverse()) await run('umount', ['-l', m]).catch(() => {});
    },
  };
}

/** Bytes of `digests` the registry served, from the requests a counting proxy saw (Range headers; a plain GET is the whole blob). */
export function blobBytes(requests: { method: string; path: string; headers: Record<string, unknown> }[], blobs: { digest: string; size: number }[]): number {
  let n = 0;
  for (const r of requests) {
    if (r.method !== 'GET') continue;
    const b = blobs.find((x) => r.path.endsWith(`/blobs/${x.digest}`));
    if (!b) continue;
    const m = /bytes=(\d+)-(\d*)/.exec(String(r.headers['range'] ?? ''));
    n += m ? Math.min(b.size - 1, m[2] ? Number(m[2]) : b.size - 1) - Number(m[1]) + 1 : b.size;
  }
  return n;
}
