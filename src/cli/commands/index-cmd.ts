import type { Argv, CommandModule } from 'yargs';
import { buildIndexLayout, pushIndex } from '../../daemon/soci-publish.js';
import { ConfigError } from '../../lib/errors.js';
import { parseSize } from '../../lib/size.js';
import { configFromArgv, withConfigOptions } from '../options.js';

interface Args {
  action: 'build' | 'push';
  ref: string;
  span: string;
  minLayerSize: string;
  output: string | undefined;
  tag: string | undefined;
  v1: boolean;
}

function progress(): ((text: string) => void) | undefined {
  if (!process.stderr.isTTY) return undefined;
  let last = 0;
  return (text) => {
    const now = Date.now();
    if (now - last < 100) return;
    last = now;
    process.stderr.write(`\r\x1b[K${text}`);
  };
}

function say(line: string): void {
  process.stderr.write(`${process.stderr.isTTY ? '\r\x1b[K' : ''}${line}\n`);
}

export const indexCommand: CommandModule<object, Args> = {
  command: 'index <action> <ref>',
  describe: 'build or push a SOCI index (zTOCs for the image\'s gzip and tar layers) so every machine mounts the image lazily from the first read',
  builder: (y: Argv) =>
    withConfigOptions(y, 'index')
      .positional('action', { choices: ['build', 'push'] as const, demandOption: true, describe: 'build: write an OCI image layout; push: push to the registry' })
      .positional('ref', { type: 'string', demandOption: true, describe: 'image reference, e.g. localhost:5000/app:1' })
      .option('span', { type: 'string', default: '4MiB', describe: 'uncompressed bytes between checkpoints (SOCI\'s default is 4MiB)' })
      .option('min-layer-size', { type: 'string', default: '10MiB', describe: 'layers smaller than this get no zTOC (SOCI\'s default)' })
      .option('output', { type: 'string', describe: 'build: the OCI image layout directory to write' })
      .option('tag', { type: 'string', describe: 'push (v2): tag of the SOCI-enabled image [default: <tag>-soci]' })
      .option('v1', { type: 'boolean', default: false, describe: 'push a SOCI index v1 that refers to the image (referrers API, or the referrers tag on registries without it) instead of a new image' })
      .example('$0 index push localhost:5000/app:1 --tag 1-soci', 'a SOCI-enabled image app:1-soci: mount it, layers are lazy at once')
      .example('$0 index push localhost:5000/app:1 --v1', 'attach the index to app:1 itself (found through the referrers API)')
      .example('$0 index build localhost:5000/app:1 --output ./app-soci', 'write the zTOCs and the SOCI index as an OCI layout') as never,
  handler: async (argv) => {
    const span = parseSize(argv.span);
    if (span === undefined || span < 64 * 1024 || span > 1 << 30) throw new ConfigError(`--span must be a size between 64KiB and 1GiB, got ${JSON.stringify(argv.span)}`);
    const minLayerSize = parseSize(argv.minLayerSize);
    if (minLayerSize === undefined) throw new ConfigError(`--min-layer-size must be a size such as 10MiB, got ${JSON.stringify(argv.minLayerSize)}`);
    const cfg = await configFromArgv(argv as unknown as Record<string, unknown>);
    const common = { span, minLayerSize, onProgress: progress(), say };
    if (argv.action === 'build') {
      if (!argv.output) throw new ConfigError('index build needs --output DIR (an OCI image layout is written there)');
      const r = await buildIndexLayout(cfg, argv.ref, argv.output, common);
      process.stdout.write(`${r.index}\n`);
    } else {
      const r = await pushIndex(cfg, argv.ref, { ...common, v1: argv.v1, tag: argv.tag });
      process.stdout.write(`${r.index}\n`);
    }
  },
};
