import type { CommandModule } from 'yargs';
import { withServices } from '../../daemon/services.js';
import { configFromArgv, withConfigOptions } from '../options.js';

interface Args {
  ref: string;
}

export const inspectCommand: CommandModule<object, Args> = {
  command: 'inspect <ref>',
  describe: 'print the resolved manifest (after index/platform selection) and the image config as JSON',
  builder: (y) =>
    withConfigOptions(y, 'inspect')
      .positional('ref', { type: 'string', demandOption: true, describe: 'image reference, e.g. alpine:3.19 or localhost:5000/app@sha256:…' })
      .example('$0 inspect docker.io/library/alpine:3.19 --platform linux/arm64', 'show the arm64 manifest and config') as never,
  handler: async (argv) => {
    const cfg = await configFromArgv(argv as unknown as Record<string, unknown>);
    await withServices(cfg, async (s) => {
      const img = await s.resolve(argv.ref);
      const out = {
        reference: img.reference.canonical,
        indexDigest: img.indexDigest,
        manifestDigest: img.manifestDigest,
        mediaType: img.manifestMediaType,
        manifest: JSON.parse(img.manifestBytes.toString('utf8')) as unknown,
        config: img.config,
        soci: img.soci && {
          found: img.soci.found,
          ...(img.soci.index && { version: img.soci.index.version, index: img.soci.index.digest, buildTool: img.soci.index.buildTool, ztocs: Object.fromEntries([...img.soci.index.ztocs].map(([layer, z]) => [layer, z.digest])) }),
          ...(img.soci.error && { error: img.soci.error }),
          layersWithoutZtoc: img.manifest.layers.filter((l) => !img.soci?.index?.ztocs.has(l.digest)).map((l) => l.digest),
        },
      };
      process.stdout.write(`${JSON.stringify(out, null, 2)}\n`);
    });
  },
};
