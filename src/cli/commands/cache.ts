import type { Argv, CommandModule } from 'yargs';
import { openStore } from '../../daemon/cache-setup.js';
import { createLogger } from '../../daemon/logger.js';
import { ConfigError, RegfsError } from '../../lib/errors.js';
import { formatSize, parseSize } from '../../lib/size.js';
import { configFromArgv, withConfigOptions } from '../options.js';

type Args = { to?: string; json?: boolean };

async function withStore<T>(argv: Record<string, unknown>, lock: boolean, fn: (s: Awaited<ReturnType<typeof openStore>>) => Promise<T>): Promise<T> {
  const cfg = await configFromArgv(argv);
  const logger = createLogger(cfg.logLevel);
  const store = await openStore(cfg, logger, lock);
  try {
    return await fn(store);
  } finally {
    await store.close();
    logger.flush();
  }
}

const stats: CommandModule<object, Args> = {
  command: 'stats',
  describe: 'size, blocks and blobs in the cache (read-only; safe while a daemon runs)',
  builder: (y) => y.option('json', { type: 'boolean', describe: 'print JSON' }) as Argv<Args>,
  handler: (argv) =>
    withStore(argv as Record<string, unknown>, false, async (store) => {
      const out = store.stats();
      if (argv.json) process.stdout.write(`${JSON.stringify(out)}\n`);
      else {
        process.stdout.write(
          `size          ${formatSize(out.sizeBytes)}\nblocks        ${out.blocks} of ${formatSize(store.blockSize)}\nsegments      ${out.segments}\nblobs         ${out.blobs}\nfully cached  ${out.fullyCachedBlobs}\nverified      ${out.verifiedBlobs}\n`,
        );
      }
    }),
};

class CorruptionFoundError extends RegfsError {
  constructor(n: number) {
    super('ERR_CACHE_CORRUPT', `${n} corrupt block${n === 1 ? '' : 's'} found and removed`);
  }
}

const verify: CommandModule<object, Args> = {
  command: 'verify',
  describe: 're-check every block checksum; removes corrupt blocks and exits non-zero if any were found',
  handler: (argv) =>
    withStore(argv as Record<string, unknown>, true, async (store) => {
      const tty = process.stderr.isTTY;
      const { checked, bad } = await store.verifyAll((done, total) => {
        if (tty) process.stderr.write(`\rverified ${done}/${total} segments`);
      });
      if (tty) process.stderr.write('\n');
      process.stdout.write(`checked ${checked} blocks, ${bad.length} corrupt\n`);
      for (const k of bad) process.stdout.write(`removed ${k}\n`);
      if (bad.length > 0) throw new CorruptionFoundError(bad.length);
    }),
};

const prune: CommandModule<object, Args> = {
  command: 'prune',
  describe: 'evict least recently used segments until the cache is at most --to',
  builder: (y) => y.option('to', { type: 'string', demandOption: true, describe: 'target size, e.g. 2GiB or 0' }).example('$0 cache prune --to 2GiB', '') as Argv<Args>,
  handler: (argv) =>
    withStore(argv as Record<string, unknown>, true, async (store) => {
      const to = parseSize(argv.to ?? '');
      if (to === undefined) throw new ConfigError(`--to must be a size such as 2GiB, got ${JSON.stringify(argv.to)}`);
      const before = store.size;
      const n = await store.pruneTo(to);
      process.stdout.write(`removed ${n} entries, ${formatSize(before)} → ${formatSize(store.size)}\n`);
    }),
};

const clear: CommandModule<object, Args> = {
  command: 'clear',
  describe: 'remove every cached block',
  handler: (argv) =>
    withStore(argv as Record<string, unknown>, true, async (store) => {
      const before = store.size;
      await store.clear();
      process.stdout.write(`cleared ${formatSize(before)}\n`);
    }),
};

export const cacheCommand: CommandModule = {
  command: 'cache <action>',
  describe: 'inspect and maintain the block cache (stats, verify, prune, clear)',
  builder: (y) =>
    withConfigOptions(y, 'cache')
      .command(stats)
      .command(verify)
      .command(prune)
      .command(clear)
      .demandCommand(1, 'name an action: stats, verify, prune or clear')
      .example('$0 cache stats --cache-dir /var/cache/regfs', 'what is cached')
      .example('$0 cache verify', 'check every block; exit 1 if any was corrupt') as never,
  handler: () => {},
};
