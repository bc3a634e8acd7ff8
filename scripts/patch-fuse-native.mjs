#!/usr/bin/env node
// Builds regfs's byte-exact variant of fuse-native 2.2.6 from the installed package, reproducibly:
//   node scripts/patch-fuse-native.mjs <c-outdir> <js-outdir>
// writes <c-outdir>/fuse-native.c (compiled by native/binding.gyp as the `regfs_fuse` target) and
// <js-outdir>/fuse-native.cjs (fuse-native's own index.js, loading that binary from its folder).
// fuse-native's C and JS API stay as they are; every change below is an anchored replacement that must match exactly
// the expected number of times, so an upgraded or altered fuse-native fails this build loudly
// instead of being patched half-way. Why each change is needed is written next to it.
import { createRequire } from 'node:module';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

const require = createRequire(import.meta.url);
const pkgDir = join(require.resolve('fuse-native/package.json'), '..');
const { version } = JSON.parse(readFileSync(join(pkgDir, 'package.json'), 'utf8'));
const [cDir, jsDir] = process.argv.slice(2);
if (!cDir || !jsDir) {
  console.error('usage: node scripts/patch-fuse-native.mjs <c-outdir> <js-outdir>');
  process.exit(2);
}

/** [why, anchor, replacement, expected count] */
const C_PATCHES = [
  [
    // The kernel hands paths and names as raw bytes; utf8 turns every non-UTF-8 byte into U+FFFD.
    // latin1 maps each byte to one char code 0-255: regfs's "byte name" form (src/lib/byte-name.ts).
    'paths and names reach JS as byte names',
    'napi_create_string_utf8(env, l->',
    'napi_create_string_latin1(env, l->',
    42,
  ],
  [
    // A macro for the reverse direction: a byte name back to the same bytes (no UTF-8 encoding).
    'a latin1 reader next to napi-macros',
    '#include <napi-macros.h>\n',
    '#include <napi-macros.h>\n\n' +
      '#define REGFS_LATIN1(name, size, val) \\\n' +
      '  char name[size]; \\\n' +
      '  size_t name##_len; \\\n' +
      '  if (napi_get_value_string_latin1(env, val, (char *) &name, size, &name##_len) != napi_ok) { \\\n' +
      '    napi_throw_error(env, "EINVAL", "Expected string"); \\\n' +
      '    return NULL; \\\n' +
      '  }\n',
    1,
  ],
  ['readdir names go back to the kernel as bytes', 'NAPI_UTF8(name, 1024, raw_name)', 'REGFS_LATIN1(name, 1024, raw_name)', 2],
  ['symlink targets go back to the kernel as bytes', 'NAPI_ARGV_UTF8(linkname, l->len, 2)', 'REGFS_LATIN1(linkname, l->len, argv[2])', 1],
  [
    // Times travel as a 64-bit count of milliseconds split in two uint32s; a time before 1970 is
    // a negative count in two's complement. Unsigned division turned it into year 584 million;
    // read it signed and floor it so that -1500 ms is -2 s + 500 ms, as struct timespec wants.
    'pre-1970 times stay negative',
    '  uint64_t ms = uint32s_to_uint64(ints);\n  ts->tv_sec = ms / 1000;\n  ts->tv_nsec = (ms % 1000) * 1000000;\n',
    '  int64_t ms = (int64_t) uint32s_to_uint64(ints);\n' +
      '  int64_t sec = ms / 1000, rem = ms % 1000;\n' +
      '  if (rem < 0) { sec -= 1; rem += 1000; }\n' +
      '  ts->tv_sec = sec;\n' +
      '  ts->tv_nsec = rem * 1000000;\n',
    1,
  ],
  [
    // Issue #19: a mount survives a restart only while some process keeps its /dev/fuse
    // descriptor open (regfs-fd-holder, systemd's fd store); this hands it out.
    'the session descriptor, for keeping it across a restart',
    'NAPI_INIT() {\n',
    'NAPI_METHOD(fuse_native_session_fd) {\n' +
      '  NAPI_ARGV(1)\n' +
      '  NAPI_ARGV_BUFFER_CAST(fuse_thread_t *, ft, 0);\n' +
      '  NAPI_RETURN_INT32(ft->ch != NULL ? fuse_chan_fd(ft->ch) : -1)\n' +
      '}\n\n' +
      'NAPI_INIT() {\n',
    1,
  ],
  ['export it', '  NAPI_EXPORT_FUNCTION(fuse_native_unmount)\n', '  NAPI_EXPORT_FUNCTION(fuse_native_unmount)\n  NAPI_EXPORT_FUNCTION(fuse_native_session_fd)\n', 1],
];

const JS_PATCHES = [
  ['load the byte-exact binary built next to this file', "const binding = require('node-gyp-build')(__dirname)", "const binding = require('./regfs_fuse.node')", 1],
  [
    // A value larger than the caller's buffer must be ERANGE (getxattr(2)); copying a prefix and
    // answering the full length made the kernel reject the reply.
    'getxattr: ERANGE when the value does not fit',
    '        value.copy(valueBuf)\n',
    '        if (valueBuf.length && value.length > valueBuf.length) return signal(-34, valueBuf.buffer)\n        value.copy(valueBuf)\n',
    1,
  ],
  [
    // xattr names are byte names: written as latin1, sized in bytes, ERANGE when they do not fit.
    // The size answered to a size query is exact (the +128 is for macOS only).
    'listxattr: byte names, exact size, ERANGE',
    `        if (!listBuf.length) {
          let size = 0
          for (const name of list) size += Buffer.byteLength(name) + 1
          size += 128 // fuse yells if we do not signal room for some mac stuff also
          return signal(size, listBuf.buffer)
        }

        let ptr = 0
        for (const name of list) {
          listBuf.write(name, ptr)
          ptr += Buffer.byteLength(name)
          listBuf[ptr++] = 0
        }
`,
    `        let size = 0
        for (const name of list) size += Buffer.byteLength(name, 'latin1') + 1
        if (!listBuf.length) return signal(IS_OSX ? size + 128 : size, listBuf.buffer)
        if (size > listBuf.length) return signal(-34, listBuf.buffer)

        let ptr = 0
        for (const name of list) {
          ptr += listBuf.write(name, ptr, 'latin1')
          listBuf[ptr++] = 0
        }
`,
    1,
  ],
  [
    'sessionFd(): the /dev/fuse descriptor of this mount, -1 before it is mounted',
    '  errno (code) {\n',
    '  sessionFd () {\n    return this._thread ? binding.fuse_native_session_fd(this._thread) : -1\n  }\n\n  errno (code) {\n',
    1,
  ],
  [
    // The mountpoint went through a shell inside double quotes, where $(…) and backquotes still run.
    'unmount without a shell',
    "const { exec } = require('child_process')",
    "const { execFile } = require('child_process')",
    1,
  ],
  [
    'unmount without a shell (call)',
    "    mnt = JSON.stringify(mnt)\n    const cmd = IS_OSX ? `diskutil unmount force ${mnt}` : `fusermount -uz ${mnt}`\n    exec(cmd, err => {",
    "    const [cmd, args] = IS_OSX ? ['diskutil', ['unmount', 'force', mnt]] : ['fusermount', ['-uz', mnt]]\n    execFile(cmd, args, err => {",
    1,
  ],
];

function apply(file, text, patches) {
  for (const [why, anchor, replacement, expected] of patches) {
    const found = text.split(anchor).length - 1;
    if (found !== expected) {
      console.error(`patch-fuse-native: fuse-native ${version} ${file}: anchor for "${why}" found ${found} times, expected ${expected}; the patch needs review for this fuse-native version`);
      process.exit(1);
    }
    text = text.split(anchor).join(replacement);
  }
  return text;
}

const header = (comment) => `${comment} Generated by scripts/patch-fuse-native.mjs from fuse-native ${version} (MIT, Mathias Buus); do not edit.\n`;
const c = apply('fuse-native.c', readFileSync(join(pkgDir, 'fuse-native.c'), 'utf8'), C_PATCHES);
const js = apply('index.js', readFileSync(join(pkgDir, 'index.js'), 'utf8'), JS_PATCHES);
mkdirSync(cDir, { recursive: true });
mkdirSync(jsDir, { recursive: true });
writeFileSync(join(cDir, 'fuse-native.c'), header('//') + c);
writeFileSync(join(jsDir, 'fuse-native.cjs'), header('//') + js);
