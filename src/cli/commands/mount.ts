import { spawn } from 'node:child_process';
import { openSync } from 'node:fs';
import type { CommandModule } from 'yargs';
import { runMount } from '../../daemon/mount.js';
import { ERROR_CODES, type ErrorCode, RegfsError } from '../../lib/errors.js';
import { parseReference } from '../../registry/index.js';
import { configFromArgv, withConfigOptions } from '../options.js';

interface Args {
  ref: string;
  mountpoint: string;
  daemon?: boolean;
  daemonChild?: boolean;
  logFile?: string;
}

class DaemonStartError extends RegfsError {
  constructor(message: string) {
    super('ERR_DAEMON_START', message);
  }
}

/** What the daemon child reports to its parent over IPC. */
type ChildMessage = { ready: string } | { error: string; code: string };

/**
 * `--daemon`: run the mount in a detached child and return once it reports ready (or failed).
 * The child's failure comes back as its own message and code, so the parent prints exactly what
 * a foreground mount would have.
 */
function startDaemon(argv: string[], logFile: string | undefined): Promise<string> {
  const args = argv.filter((a) => a !== '--daemon' && a !== '--daemon=true');
  const err = logFile ? openSync(logFile, 'a', 0o600) : 'ignore';
  // Same node flags as the shebang (the young-generation size), whatever started this process.
  const flags = process.execArgv.some((a) => a.startsWith('--max-semi-space-size')) ? process.execArgv : [...process.execArgv, '--max-semi-space-size=1'];
  const child = spawn(process.execPath, [...flags, process.argv[1]!, ...args, '--daemon-child'], {
    detached: true,
    stdio: ['ignore', 'ignore', err, 'ipc'],
  });
  return new Promise((resolve, reject) => {
    child.once('message', (m: ChildMessage) => {
      if ('ready' in m) {
        child.disconnect();
        child.unref();
        resolve(m.ready);
      } else reject(new RegfsError((ERROR_CODES as readonly string[]).includes(m.code) ? (m.code as ErrorCode) : 'ERR_DAEMON_START', m.error));
    });
    child.once('exit', (code, sig) => reject(new DaemonStartError(`the daemon exited (${sig ?? `code ${code}`}) before the mount was ready${logFile ? `; see ${logFile}` : ''}`)));
    child.once('error', (e) => reject(new DaemonStartError(e.message)));
  });
}

export const mountCommand: CommandModule<object, Args> = {
  command: 'mount <ref> <mountpoint>',
  describe: 'resolve an image and mount it read-only (manifest.json, config.json, blobs/, layers/, rootfs/), fetched lazily',
  builder: (y) =>
    withConfigOptions(y, 'mount')
      .positional('ref', { type: 'string', demandOption: true, describe: 'image reference, e.g. alpine:3.19 or localhost:5000/app@sha256:…' })
      .positional('mountpoint', { type: 'string', demandOption: true, describe: 'an existing empty directory' })
      .option('daemon', { type: 'boolean', describe: 'detach; exit 0 once the mount is ready, non-zero with the reason otherwise' })
      .option('daemon-child', { type: 'boolean', hidden: true })
      .option('log-file', { type: 'string', describe: 'with --daemon: append the daemon log here (default: discarded)' })
      .example('$0 mount localhost:5000/app:1 /mnt/app', 'mount in the foreground; Ctrl-C unmounts')
      .example('$0 mount alpine:3.19 /mnt/alpine --daemon --metrics 127.0.0.1:9100', 'mount in the background with metrics')
      .example('sha256sum /mnt/app/blobs/*', 'every blob hashes to its name')
      .example('/mnt/app/rootfs/usr/bin/env', 'run a program of the image without pulling it') as never,
  handler: async (argv) => {
    if (argv.daemon) {
      // Flags and config are checked here, before detaching: a mistake is reported by this
      // process, exactly as without --daemon. What only the child can find out comes back over IPC.
      await configFromArgv(argv as unknown as Record<string, unknown>);
      parseReference(argv.ref);
      const line = await startDaemon(process.argv.slice(2), argv.logFile);
      process.stdout.write(`${line}\n`);
      return;
    }
    const child = argv.daemonChild === true && typeof process.send === 'function';
    try {
      const cfg = await configFromArgv(argv as unknown as Record<string, unknown>);
      const stopped = new Promise<string>((resolve) => {
        // SIGUSR2: hand a kept mount over to the process that takes it (keepMounts), no unmount.
        for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP', 'SIGUSR2'] as const) process.once(sig, () => resolve(sig));
      });
      // The parent leaving (it disconnects once the mount is ready) is not a reason to stop.
      if (child) process.once('disconnect', () => {});
      await runMount(cfg, argv.ref, argv.mountpoint, {
        stopped,
        onReady: (line) => {
          if (child) process.send!({ ready: line } satisfies ChildMessage);
          else process.stdout.write(`${line}\n`);
        },
        onProgress: !child && process.stderr.isTTY ? (text) => process.stderr.write(`\r\x1b[K${text}${text.endsWith('(100%)') ? '\n' : ''}`) : undefined,
      });
    } catch (e) {
      if (child && process.connected) {
        // The code main.ts would print for it in the foreground.
        const code = e instanceof RegfsError ? e.code : typeof (e as { code?: unknown })?.code === 'string' ? (e as { code: string }).code : 'ERR_INTERNAL';
        await new Promise<void>((r) => process.send!({ error: (e as Error).message, code } satisfies ChildMessage, () => r()));
      }
      throw e;
    }
  },
};

export const unmountCommand: CommandModule<object, { mountpoint: string }> = {
  command: 'unmount <mountpoint>',
  aliases: ['umount'],
  describe: 'unmount cleanly (lazily if busy); also clears a dead mount left by a killed daemon',
  builder: (y) =>
    y
      .positional('mountpoint', { type: 'string', demandOption: true })
      .example('$0 unmount /mnt/app', '') as never,
  handler: async (argv) => {
    const { unmountPath } = await import('../../daemon/mountpoint.js');
    const how = await unmountPath(argv.mountpoint);
    process.stdout.write(how === 'not-mounted' ? `${argv.mountpoint}: not mounted\n` : `unmounted ${argv.mountpoint}${how === 'lazy' ? ' (lazily: it was busy)' : ''}\n`);
  },
};
