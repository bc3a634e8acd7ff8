import type { Argv, CommandModule } from 'yargs';
import { clearProfile, pushProfile, showProfile } from '../../daemon/profile-admin.js';
import { displayName } from '../../lib/byte-name.js';
import { formatSize } from '../../lib/size.js';
import { type Profile, rangeBytes } from '../../view/profile-format.js';
import { configFromArgv, withConfigOptions } from '../options.js';

interface Args {
  action: 'show' | 'clear' | 'push';
  ref: string;
  json: boolean;
}

const ranges = (rs: readonly (readonly [number, number])[]): string => rs.map(([s, e]) => `${s}-${e}`).join(',');

/** One row per file, in the order they were first read: what a replay fetches first. */
function table(p: Profile, path: string): string {
  const total = p.files.reduce((n, f) => n + rangeBytes(f.ranges), 0);
  const lines = [
    `image      ${p.image}`,
    `file       ${path}`,
    `recorded   ${p.recordedAt} (first ${p.windowMs / 1000} s of a mount)`,
    `files      ${p.files.length}, ${formatSize(total)} read`,
    ...p.blobs.map((b) => `blob       ${b.digest} served as ${b.servedAs}: ${b.ranges.length} compressed ranges, ${formatSize(rangeBytes(b.ranges))}`),
    '',
  ];
  const rows = p.files.map((f, i) => [String(i + 1), f.layer.slice(0, 19), formatSize(rangeBytes(f.ranges)), ranges(f.ranges), displayName(f.path)]);
  const head = ['#', 'LAYER', 'BYTES', 'RANGES [start-end)', 'PATH'];
  const width = head.map((h, c) => Math.max(h.length, ...rows.map((r) => r[c]!.length)));
  for (const r of [head, ...rows]) lines.push(r.map((v, c) => (c === r.length - 1 ? v : v.padEnd(width[c]!))).join('  '));
  return `${lines.join('\n')}\n`;
}

function json(p: Profile): unknown {
  return { ...p, files: p.files.map((f) => ({ ...f, path: displayName(f.path), bytes: rangeBytes(f.ranges) })) };
}

export const profileCommand: CommandModule<object, Args> = {
  command: 'profile <action> <ref>',
  describe: 'the access profile of an image: which files and byte ranges its mounts read first, recorded in the cache and prefetched by the next mount (#15)',
  builder: (y: Argv) =>
    withConfigOptions(y, 'profile')
      .positional('action', {
        choices: ['show', 'clear', 'push'] as const,
        demandOption: true,
        describe: 'show: the recorded files and ranges; clear: forget the profile (the next mount records afresh); push: attach it to the image in the registry so other machines prefetch it',
      })
      .positional('ref', { type: 'string', demandOption: true, describe: 'image reference, e.g. localhost:5000/app:1 (resolved to its manifest digest: a profile belongs to one digest)' })
      .option('json', { type: 'boolean', default: false, describe: 'show: print JSON instead of a table' })
      .epilogue(
        'A mount records what it reads during its first --profile-record (default 60s) into <cacheDir>/profiles/sha256-<hex>.json. ' +
          'The next mount of the same image — after its chunks were evicted, or on another machine that got the profile with `push` — ' +
          'fetches exactly those ranges first, in parallel and within --prefetch-rate, before the reads ask for them. ' +
          'Format: docs/profile-format.md.',
      )
      .example('$0 profile show localhost:5000/app:1', 'the files the last mount of app:1 read first, in order')
      .example('$0 profile show localhost:5000/app:1 --json', 'the same as JSON')
      .example('$0 profile push localhost:5000/app:1', 'publish it as an OCI referrer of the image (the referrers tag on registries without the API)')
      .example('$0 profile clear localhost:5000/app:1', 'forget it') as never,
  handler: async (argv) => {
    const cfg = await configFromArgv(argv as unknown as Record<string, unknown>);
    if (argv.action === 'show') {
      const s = await showProfile(cfg, argv.ref);
      if (argv.json) process.stdout.write(`${JSON.stringify(s.profile ? json(s.profile) : null, null, 2)}\n`);
      else if (s.profile) process.stdout.write(table(s.profile, s.path));
      else process.stdout.write(`no access profile for ${s.reference} (${s.image}) in ${s.path}; a mount records one\n`);
    } else if (argv.action === 'clear') {
      const r = await clearProfile(cfg, argv.ref);
      process.stdout.write(r.removed ? `removed the access profile of ${r.image}\n` : `no access profile for ${r.image}; nothing to remove\n`);
    } else {
      const r = await pushProfile(cfg, argv.ref);
      process.stdout.write(`${r.manifest}\n`);
      process.stderr.write(`access profile of ${r.image} pushed as referrer ${r.manifest} (${r.via === 'api' ? 'referrers API' : 'referrers tag: the registry has no referrers API'})\n`);
    }
  },
};
