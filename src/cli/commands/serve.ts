import { request } from 'node:http';
import type { CommandModule } from 'yargs';
import { runServe } from '../../daemon/serve.js';
import { RegfsError } from '../../lib/errors.js';
import { configFromArgv, withConfigOptions } from '../options.js';

export const serveCommand: CommandModule<object, { store?: string }> = {
  command: 'serve',
  describe: 'the service: an image store where <store>/<registry>/<repo>/<tag>/ appears on first lookup',
  builder: (y) =>
    withConfigOptions(y, 'serve')
      .example('$0 serve --config /etc/regfs/config.yaml', 'as the systemd unit in scripts/regfs.service runs it')
      .example('ls /var/lib/regfs/store/docker.io/library/alpine/3.19/rootfs', 'resolves and mounts alpine:3.19 on first lookup')
      .example('$0 serve --store /var/lib/regfs/store --layer-store /var/lib/regfs/layers', 'podman/CRI-O start containers from regfs (README: Run containers with podman or CRI-O)') as never,
  handler: async (argv) => {
    const load = () => configFromArgv(argv as unknown as Record<string, unknown>);
    const cfg = await load();
    let reload: (() => Promise<void>) | undefined;
    process.on('SIGHUP', () => void reload?.());
    await runServe(cfg, {
      stopped: new Promise((resolve) => {
        // SIGUSR2: hand a kept store mount over to the process that takes it (keepMounts), no unmount.
        for (const sig of ['SIGINT', 'SIGTERM', 'SIGUSR2'] as const) process.once(sig, () => resolve(sig));
      }),
      onReload: (h) => (reload = h),
      reloadConfig: load,
      onReady: (line) => process.stdout.write(`${line}\n`),
    });
  },
};

class ControlError extends RegfsError {
  constructor(message: string) {
    super('ERR_CONTROL', message);
  }
}

function call(socketPath: string, method: string, path: string): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const req = request({ socketPath, method, path, timeout: 600_000 }, (res) => {
      let body = '';
      res.on('data', (d: Buffer) => (body += d.toString()));
      res.on('end', () => {
        let json: unknown;
        try {
          json = JSON.parse(body);
        } catch {
          return reject(new ControlError(`the service answered something that is not JSON: ${body.slice(0, 200)}`));
        }
        if ((res.statusCode ?? 500) >= 400) return reject(new ControlError((json as { error?: string }).error ?? `HTTP ${res.statusCode}`));
        resolve(json);
      });
    });
    req.on('error', (e: NodeJS.ErrnoException) =>
      reject(new ControlError(e.code === 'ENOENT' || e.code === 'ECONNREFUSED' ? `no regfs serve is listening on ${socketPath} (is the service running? --control PATH)` : e.message)),
    );
    req.end();
  });
}

export const ctlCommand: CommandModule<object, { action: string; ref?: string; control?: string }> = {
  command: 'ctl <action> [ref]',
  describe: 'talk to a running `regfs serve`: ls, stats, prefetch <ref>, forget <ref>',
  builder: (y) =>
    withConfigOptions(y, 'ctl')
      .positional('action', { type: 'string', choices: ['ls', 'stats', 'prefetch', 'forget'], demandOption: true })
      .positional('ref', { type: 'string', describe: 'image reference (prefetch, forget)' })
      .example('$0 ctl ls', 'images the store has resolved')
      .example('$0 ctl prefetch registry.internal/app:1', 'fetch every layer of app:1 into the cache now') as never,
  handler: async (argv) => {
    const cfg = await configFromArgv(argv as unknown as Record<string, unknown>);
    const socket = argv.control ?? cfg.control!;
    if ((argv.action === 'prefetch' || argv.action === 'forget') && !argv.ref) throw new ControlError(`ctl ${argv.action} needs an image reference`);
    const q = argv.ref ? `?ref=${encodeURIComponent(argv.ref)}` : '';
    const method = argv.action === 'ls' || argv.action === 'stats' ? 'GET' : 'POST';
    const out = await call(socket, method, `/${argv.action}${q}`);
    process.stdout.write(`${JSON.stringify(out, null, 2)}\n`);
  },
};
