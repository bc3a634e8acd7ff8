import { test } from 'node:test';
import assert from 'node:assert/strict';
import { constants } from 'node:os';
import { ERRNO_OF_CODE, FsError, errnoOf } from '../../src/fs/errno.js';
import {
  AbortedError,
  AuthError,
  ERROR_CODES,
  HttpStatusError,
  InvalidReferenceError,
  NotFoundError,
  RegfsError,
  RetryBudgetError,
  UnsupportedMediaTypeError,
} from '../../src/lib/errors.js';
import { LayerFormatError } from '../../src/image/errors.js';

test('every one of the error codes has an errno, and each is a real Linux errno name', () => {
  const mapped = Object.keys(ERRNO_OF_CODE).sort();
  // ERR_FS is the one code without a row: an FsError carries its own errno.
  assert.deepEqual(mapped, ERROR_CODES.filter((c) => c !== 'ERR_FS').sort());
  assert.equal(mapped.length, ERROR_CODES.length - 1);
  for (const [code, name] of Object.entries(ERRNO_OF_CODE)) {
    assert.equal(typeof (constants.errno as Record<string, number>)[name], 'number', `${code} → ${name}`);
  }
});

test('errno of each error class: aborted EINTR, unsupported EOPNOTSUPP, auth EACCES, broken data EIO', () => {
  const table: [unknown, string][] = [
    [new AbortedError(), 'EINTR'],
    [new UnsupportedMediaTypeError('application/vnd.oci.image.layer.v1.tar+zstd', 'layer'), 'EOPNOTSUPP'],
    [new AuthError('r.example', 'wrong password', {}, true), 'EACCES'],
    [new InvalidReferenceError('Bad Ref', 'reference', 'contains whitespace'), 'ENOENT'],
    // A 404 for a blob the manifest names: the file exists, its data cannot be produced.
    [new NotFoundError('blob sha256:00', { digest: 'sha256:00' }), 'EIO'],
    [new HttpStatusError(503, {}), 'EIO'],
    [new RetryBudgetError(4, 3000, {}), 'EIO'],
    [new LayerFormatError('sha256:00', 'bad tar'), 'EIO'],
    [new FsError('ENOTDIR', '/a: not a directory'), 'ENOTDIR'],
    [new FsError('ENOENT', '/a: no such file'), 'ENOENT'],
    // Not ours at all (a bug): EIO, never a crash.
    [new TypeError('x is undefined'), 'EIO'],
    ['a string', 'EIO'],
    [undefined, 'EIO'],
  ];
  for (const [e, want] of table) assert.equal(errnoOf(e), want, String((e as Error)?.message ?? e));
});

test('FsError is a RegfsError with the stable code ERR_FS', () => {
  const e = new FsError('EROFS', '/x: read-only filesystem');
  assert.ok(e instanceof RegfsError);
  assert.equal(e.code, 'ERR_FS');
  assert.equal(e.name, 'FsError');
  assert.equal(e.errno, 'EROFS');
});
