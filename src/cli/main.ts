#!/usr/bin/env -S node --max-semi-space-size=1
// The flag above: a small young generation. Most of what the daemon allocates is network buffers
// that die young, and with the default 16 MB semi-spaces their external memory waits too long for
// a scavenge. Measured streaming 256 MB cold: peak RSS 178 → 135 MB, same throughput.
import yargs from 'yargs';
import { hideBin } from 'yargs/helpers';
import { RegfsError } from '../lib/errors.js';
import { blobCommand } from './commands/blob.js';
import { inspectCommand } from './commands/inspect.js';
import { indexCommand } from './commands/index-cmd.js';
import { cacheCommand } from './commands/cache.js';
import { mountCommand, unmountCommand } from './commands/mount.js';
import { ctlCommand, serveCommand } from './commands/serve.js';
import { profileCommand } from './commands/profile.js';

/** The entry file: the only place that calls process.exit. */
async function main(): Promise<number> {
  try {
    await yargs(hideBin(process.argv))
      .scriptName('regfs')
      .usage('$0 <command>\n\nMount container registry content as a lazily fetched read-only filesystem.')
      .command(inspectCommand)
      .command(blobCommand)
      .command(cacheCommand)
      .command(mountCommand)
      .command(unmountCommand)
      .command(serveCommand)
      .command(ctlCommand)
      .command(indexCommand)
      .command(profileCommand)
      .demandCommand(1, 'name a command; see regfs --help')
      .strict()
      .recommendCommands()
      .fail((msg, err, y) => {
        if (err) throw err;
        process.stderr.write(`${y.help() && ''}regfs: ${msg} [ERR_USAGE]\nrun with --help for usage\n`);
        throw new UsageError(msg);
      })
      .help()
      .alias('h', 'help')
      .version()
      .wrap(Math.min(110, process.stdout.columns || 100))
      .parseAsync();
    return 0;
  } catch (e) {
    if (e instanceof UsageError) return 2;
    // One line with its code, never a stack trace: what a user can act on. An error that is not
    // ours keeps Node's code (EACCES, …) when it has one.
    const code = e instanceof RegfsError ? e.code : typeof (e as { code?: unknown })?.code === 'string' ? (e as { code: string }).code : 'ERR_INTERNAL';
    const message = ((e as Error)?.message ?? String(e)).split('\n')[0];
    process.stderr.write(`regfs: ${message} [${code}]\n`);
    return 1;
  }
}

class UsageError extends Error {}

// Exit explicitly: a FUSE session can leave a native handle that would keep the loop alive.
process.exit(await main());
