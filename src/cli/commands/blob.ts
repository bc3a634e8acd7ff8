import type { CommandModule } from 'yargs';
import { withServices } from '../../daemon/services.js';
import { parseDigest } from '../../lib/digest.js';
import { ConfigError } from '../../lib/errors.js';
import { formatSize } from '../../lib/size.js';
import { configFromArgv, withConfigOptions } from '../options.js';

interface Args {
  ref: string;
  digest: string;
  offset: number;
  length: number | undefined;
}

/** Matches the largest coalesced range request, so a cold stream costs one request per step. */
const STEP = 16 * 1024 * 1024;

export const blobCommand: CommandModule<object, Args> = {
  command: 'blob <ref> <digest>',
  describe: 'write blob bytes to stdout through the same cache and backend as the mount (no FUSE)',
  builder: (y) =>
    withConfigOptions(y, 'blob')
      .positional('ref', { type: 'string', demandOption: true, describe: 'image reference naming the repository' })
      .positional('digest', { type: 'string', demandOption: true, describe: 'blob digest, sha256:…' })
      .option('offset', { type: 'number', default: 0, describe: 'first byte to write' })
      .option('length', { type: 'number', describe: 'bytes to write [default: to the end]' })
      .example('$0 blob localhost:5000/app:1 sha256:4f… | sha256sum', 'fetch a layer and hash it')
      .example('$0 blob alpine sha256:4f… --offset 1048576 --length 512 | xxd', 'read 512 bytes at 1 MiB') as never,
  handler: async (argv) => {
    const digest = parseDigest(argv.digest);
    if (!Number.isSafeInteger(argv.offset) || argv.offset < 0) throw new ConfigError(`--offset must be a non-negative integer, got ${argv.offset}`);
    if (argv.length !== undefined && (!Number.isSafeInteger(argv.length) || argv.length < 0)) throw new ConfigError(`--length must be a non-negative integer, got ${argv.length}`);
    const cfg = await configFromArgv(argv as unknown as Record<string, unknown>);
    await withServices(cfg, async (s) => {
      const reader = s.blobReader(argv.ref);
      const size = await reader.size(digest);
      if (argv.offset > size) throw new ConfigError(`--offset ${argv.offset} is past the end of ${digest} (${size} bytes)`);
      const end = argv.length === undefined ? size : Math.min(size, argv.offset + argv.length);
      const tty = process.stderr.isTTY;
      const started = Date.now();
      // One step is read ahead while the previous one is written out.
      const readStep = (at: number): Promise<Buffer> | undefined => {
        if (at >= end) return undefined;
        const buf = Buffer.allocUnsafe(Math.min(STEP, end - at));
        return reader.readAt(digest, at, buf).then((n) => buf.subarray(0, n));
      };
      let next = readStep(argv.offset);
      for (let pos = argv.offset; next; ) {
        const chunk = await next;
        if (chunk.length === 0) break;
        pos += chunk.length;
        next = readStep(pos);
        if (!process.stdout.write(chunk)) await new Promise((r) => process.stdout.once('drain', r));
        if (tty) {
          const rate = (pos - argv.offset) / Math.max(0.001, (Date.now() - started) / 1000);
          process.stderr.write(`\r${formatSize(pos - argv.offset)} / ${formatSize(end - argv.offset)}  ${formatSize(rate)}/s   `);
        }
      }
      if (tty) process.stderr.write('\n');
    });
  },
};
