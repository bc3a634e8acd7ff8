// The real programs the benchmark measures against: nginx as blob storage (what the registry's
// redirect middleware points at, and what a CDN is) and `rclone mount` as a peer FUSE reader.
// Neither is ours, so neither can flatter us: a Node file server tops out near 340 MB/s here and
// would hide every loss above that (design.md, measured facts).
import { spawn } from 'node:child_process';
import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** nginx (Debian nginx-light) serving `root` on 127.0.0.1:port: sendfile, Range, autoindex for rclone. */
export async function startNginx(root, workDir, port) {
  const dir = join(workDir, `nginx-${port}`);
  await mkdir(join(dir, 'tmp'), { recursive: true });
  const conf = join(dir, 'nginx.conf');
  await writeFile(conf, [
    'daemon off;',
    // The storage is in a 0700 temp dir owned by root; nginx's default worker user cannot read it.
    'user root;',
    'worker_processes 2;',
    `pid ${dir}/nginx.pid;`,
    `error_log ${dir}/error.log warn;`,
    'events { worker_connections 1024; }',
    'http {',
    '  access_log off;',
    '  sendfile on; tcp_nopush on; keepalive_requests 100000;',
    `  client_body_temp_path ${dir}/tmp;`,
    '  default_type application/octet-stream;',
    `  server { listen 127.0.0.1:${port}; root ${root}; autoindex on; }`,
    '}',
    '',
  ].join('\n'));
  const child = spawn('nginx', ['-c', conf, '-p', dir], { stdio: 'ignore' });
  let exited = false;
  child.once('exit', () => (exited = true));
  for (let i = 0; i < 100; i++) {
    if (exited) throw new Error(`nginx exited at start; see ${dir}/error.log: ${await readFile(join(dir, 'error.log'), 'utf8').catch(() => '')}`);
    const ok = await fetch(`http://127.0.0.1:${port}/`).then((r) => r.ok, () => false);
    if (ok) break;
    await sleep(50);
  }
  return {
    port,
    pid: child.pid,
    close: async () => {
      if (exited) return;
      child.kill('SIGTERM');
      await new Promise((r) => child.once('exit', r));
    },
  };
}

/** `rclone mount` of an HTTP directory (nginx autoindex) with its own full VFS cache. */
export async function startRclone(url, mnt, cacheDir, forceUnmount) {
  await mkdir(mnt, { recursive: true });
  const child = spawn('rclone', ['mount', ':http:', mnt, '--http-url', url, '--vfs-cache-mode', 'full', '--cache-dir', cacheDir, '--read-only', '--dir-cache-time', '1h', '--no-modtime'], { stdio: 'ignore' });
  let exited = false;
  child.once('exit', () => (exited = true));
  for (let i = 0; i < 200; i++) {
    if (exited) throw new Error('rclone mount exited at start');
    if ((await readdir(mnt).catch(() => [])).length > 0) break;
    await sleep(50);
  }
  return {
    pid: child.pid,
    close: async () => {
      if (!exited) {
        child.kill('SIGTERM');
        await new Promise((r) => child.once('exit', r));
      }
      await forceUnmount(mnt);
    },
  };
}

/** User + system CPU seconds a process has used so far (/proc/<pid>/stat, 100 ticks/s). */
export async function cpuSeconds(pid) {
  const f = (await readFile(`/proc/${pid}/stat`, 'utf8')).split(') ')[1].split(' ');
  return (Number(f[11]) + Number(f[12])) / 100;
}

/** Peak resident set of a process in MB (VmHWM). */
export async function peakRssMB(pid) {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  return Number(/VmHWM:\s+(\d+) kB/.exec(status)[1]) / 1024;
}
