import type { CommandModule } from 'yargs';
import { runServe } from '../../daemon/serve.js';
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
