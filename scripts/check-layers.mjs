#!/usr/bin/env node
// Enforces design.md's "must not import" table: folder → folders and packages it may not import.
import { readdir, readFile } from 'node:fs/promises';
import { join, relative } from 'node:path';

const SRC = new URL('../src/', import.meta.url).pathname;
const FORBIDDEN = {
  lib: ['registry', 'cache', 'blob', 'fs', 'image', 'view', 'daemon', 'config', 'cli'],
  registry: ['cache', 'blob', 'fs', 'image', 'view', 'daemon', 'cli'],
  cache: ['registry', 'blob', 'fs', 'image', 'view', 'daemon', 'cli'],
  blob: ['fs', 'view', 'daemon', 'registry', 'cli', 'image'],
  image: ['fs', 'registry', 'cache', 'view', 'daemon', 'cli'],
  // view/ (how images appear as files) sits between image/ and daemon/.
  view: ['daemon', 'cli'],
  fs: ['registry', 'cache', 'image', 'view', 'daemon', 'cli'],
  config: ['registry', 'cache', 'blob', 'fs', 'image', 'view', 'daemon', 'cli'],
  daemon: ['cli'],
  cli: [],
};
// Packages owned by exactly one folder.
const OWNERS = { undici: 'registry', 'lru-cache': 'cache', 'fuse-native': 'fs', pino: 'daemon', yargs: 'cli' };

async function* walk(dir) {
  for (const e of await readdir(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) yield* walk(p);
    else if (p.endsWith('.ts')) yield p;
  }
}

const problems = [];
for await (const file of walk(SRC)) {
  const rel = relative(SRC, file);
  const folder = rel.split('/')[0];
  const text = await readFile(file, 'utf8');
  for (const m of text.matchAll(/(?:import|export)[^'"]*?from\s+['"]([^'"]+)['"]|import\(\s*['"]([^'"]+)['"]\s*\)/g)) {
    const spec = m[1] ?? m[2];
    if (spec.startsWith('.')) {
      const target = relative(SRC, join(file, '..', spec)).split('/')[0];
      if ((FORBIDDEN[folder] ?? []).includes(target)) problems.push(`${rel}: ${folder}/ must not import ${target}/ (${spec})`);
    } else {
      const pkg = spec.startsWith('@') ? spec.split('/').slice(0, 2).join('/') : spec.split('/')[0];
      const owner = OWNERS[pkg];
      if (owner && owner !== folder) problems.push(`${rel}: only ${owner}/ may import ${pkg}`);
    }
  }
  if (folder !== 'config' && /process\.env\b/.test(text)) problems.push(`${rel}: only config/ reads process.env`);
  if (folder !== 'cli' && /process\.exit\(/.test(text)) problems.push(`${rel}: process.exit belongs in the CLI entry file`);
}
if (problems.length) {
  console.error(`layering violations:\n  ${problems.join('\n  ')}`);
  process.exit(1);
}
console.log('layering: ok');
