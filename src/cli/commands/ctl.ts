import { request } from 'node:http';
import type { CommandModule } from 'yargs';
import { RegfsError } from '../../lib/errors.js';
import { pidAlive } from '../../lib/pid-alive.js';
import { configFromArgv, withConfigOptions } from '../options.js';

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
  describe: 'talk to a running `regfs serve`: ls, stats, prefetch <ref>, forget <ref>, restart',
  builder: (y) =>
    withConfigOptions(y, 'ctl')
      .positional('action', { type: 'string', choices: ['ls', 'stats', 'prefetch', 'forget', 'restart'], demandOption: true })
      .positional('ref', { type: 'string', describe: 'image reference (prefetch, forget)' })
      .example('$0 ctl ls', 'images the store has resolved')
      .example('$0 ctl prefetch registry.internal/app:1', 'fetch every layer of app:1 into the cache now')
      .example('$0 ctl restart', 'upgrade: the binary now on disk takes the store over; open files keep reading (needs keepMounts)') as never,
  handler: async (argv) => {
    const cfg = await configFromArgv(argv as unknown as Record<string, unknown>);
    const socket = argv.control ?? cfg.control!;
    if ((argv.action === 'prefetch' || argv.action === 'forget') && !argv.ref) throw new ControlError(`ctl ${argv.action} needs an image reference`);
    const q = argv.ref ? `?ref=${encodeURIComponent(argv.ref)}` : '';
    const method = argv.action === 'ls' || argv.action === 'stats' ? 'GET' : 'POST';
    if (argv.action === 'restart') return restart(socket);
    const out = await call(socket, method, `/${argv.action}${q}`);
    process.stdout.write(`${JSON.stringify(out, null, 2)}\n`);
  },
};


/**
 * Restart = the service starts its successor, which takes the mount over; we wait until the old
 * process has gone and the new one answers on the control socket, so a script can go on at once.
 */
async function restart(socket: string): Promise<void> {
  const { previous, next } = (await call(socket, 'POST', '/restart')) as { previous: number; next: number };
  const until = Date.now() + 60_000;
  for (;;) {
    if (!pidAlive(next)) {
      throw new ControlError(
        pidAlive(previous) ? `the new regfs (pid ${next}) exited before taking over; pid ${previous} still serves — see the service's log` : `the new regfs (pid ${next}) exited and pid ${previous} is gone too — see the service's log`,
      );
    }
    if (!pidAlive(previous) && (await call(socket, 'GET', '/ls').then(() => true, () => false))) break;
    if (Date.now() > until) throw new ControlError(`pid ${previous} has not handed over to pid ${next} within 60 s — see the service's log`);
    await new Promise((r) => setTimeout(r, 50));
  }
  process.stdout.write(`regfs restarted: pid ${previous} → pid ${next}; the mounts stayed\n`);
}
