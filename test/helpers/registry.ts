import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream } from 'node:fs';
import { writeFile, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { GiveUp, freePort, waitFor } from './tmp.js';

export type RegistryAuth =
  | { kind: 'none' }
  | { kind: 'htpasswd'; path: string }
  | { kind: 'token'; realm: string; service: string; issuer: string; certPath: string };

export interface RegistryOptions {
  /** Storage root; several registries may share one (push to an open one, serve with auth). */
  root: string;
  /** Directory for config and log files. */
  workDir: string;
  auth?: RegistryAuth;
  /** `redirect` storage middleware base URL (a static server over `root`). */
  redirectBaseUrl?: string;
  port?: number;
}

export interface RunningRegistry {
  host: string;
  port: number;
  url: string;
  logPath: string;
  stop(): Promise<void>;
  /** SIGKILL, as when a registry dies. */
  kill(): Promise<void>;
  /** Start the same registry again on the same port. */
  restart(): Promise<void>;
  log(): Promise<string>;
}

/** Starts the real CNCF registry (`docker-registry serve CONFIG`) on loopback. */
export async function startRegistry(opts: RegistryOptions): Promise<RunningRegistry> {
  const port = opts.port ?? (await freePort());
  const auth = opts.auth ?? { kind: 'none' };
  const lines = [
    'version: 0.1',
    'log:',
    '  level: info',
    '  accesslog:',
    '    disabled: false',
    'storage:',
    '  filesystem:',
    `    rootdirectory: ${opts.root}`,
    '  delete:',
    '    enabled: true',
    '  maintenance:',
    '    uploadpurging:',
    '      enabled: false',
    'http:',
    `  addr: 127.0.0.1:${port}`,
    '  secret: regfs-test-secret',
  ];
  if (auth.kind === 'htpasswd') lines.push('auth:', '  htpasswd:', '    realm: regfs-test', `    path: ${auth.path}`);
  if (auth.kind === 'token') {
    lines.push('auth:', '  token:', `    realm: ${auth.realm}`, `    service: ${auth.service}`, `    issuer: ${auth.issuer}`, `    rootcertbundle: ${auth.certPath}`);
  }
  if (opts.redirectBaseUrl) {
    lines.push('middleware:', '  storage:', '    - name: redirect', '      options:', `        baseurl: ${opts.redirectBaseUrl}`);
  }
  const cfgPath = join(opts.workDir, `registry-${port}.yml`);
  const logPath = join(opts.workDir, `registry-${port}.log`);
  await writeFile(cfgPath, lines.join('\n') + '\n');

  let child: ChildProcess | undefined;
  const start = async (): Promise<void> => {
    const log = createWriteStream(logPath, { flags: 'a' });
    const c = spawn('docker-registry', ['serve', cfgPath], { stdio: ['ignore', 'pipe', 'pipe'] });
    c.stdout!.pipe(log);
    c.stderr!.pipe(log);
    child = c;
    let exited = false;
    c.once('exit', () => (exited = true));
    await waitFor(`docker-registry on port ${port}`, async () => {
      if (exited) throw new GiveUp(`docker-registry exited; see ${logPath}`);
      const res = await fetch(`http://127.0.0.1:${port}/v2/`);
      await res.arrayBuffer();
      return res.status === 200 || res.status === 401;
    });
  };
  const stopWith = async (sig: NodeJS.Signals): Promise<void> => {
    const c = child;
    child = undefined;
    if (!c || c.exitCode !== null || c.signalCode !== null) return;
    await new Promise<void>((r) => {
      c.once('exit', () => r());
      c.kill(sig);
    });
  };
  await start();
  return {
    host: `127.0.0.1:${port}`,
    port,
    url: `http://127.0.0.1:${port}`,
    logPath,
    stop: () => stopWith('SIGTERM'),
    kill: () => stopWith('SIGKILL'),
    restart: async () => {
      await stopWith('SIGKILL');
      await start();
    },
    log: () => readFile(logPath, 'utf8'),
  };
}
