import { test } from 'node:test';
import assert from 'node:assert/strict';
import { gunzipSync, gzipSync } from 'node:zlib';
import { decodeIndex, encodeIndex, type LayerIndex } from '../../src/image/index-codec.js';

const sample = (): LayerIndex => ({
  format: 'gzip',
  compressedSize: 1234,
  uncompressedSize: 99999,
  entries: [
    {
      path: 'bin/caf\xe9\xff',
      type: 'file',
      mode: 0o4755,
      uid: 1000,
      gid: 4294967294,
      size: 5 * 1024 ** 3,
      mtimeMs: -86_400_001,
      linkname: '',
      devmajor: 0,
      devminor: 0,
      dataOffset: 1536,
      xattrs: new Map([['security.capability', Buffer.from('01000002c0000080000000000000000000000000', 'hex')], ['user.\xe9', Buffer.from([0, 0xff])]]),
      sparse: [{ offset: 0, length: 4096 }, { offset: 5 * 1024 ** 3 - 4096, length: 4096 }],
    },
    { path: 'l', type: 'symlink', mode: 0o777, uid: 0, gid: 0, size: 0, mtimeMs: 0, linkname: '\x80\x81', devmajor: 0, devminor: 0, dataOffset: 0 },
    { path: 'broken', type: 'file', mode: 0o644, uid: 0, gid: 0, size: 10, mtimeMs: 0, linkname: '', devmajor: 0, devminor: 0, dataOffset: 0, problem: 'why' },
  ],
  checkpoints: [{ in: 10, bits: 3, out: 0, window: Buffer.alloc(32768, 7) }],
});

test('index round trip keeps byte names, binary xattr values, a 5 GiB sparse map, negative mtimes and problems exactly', async () => {
  const ix = sample();
  const back = await decodeIndex(await encodeIndex(ix));
  assert.ok(back);
  assert.deepEqual(back.entries[0], ix.entries[0]);
  assert.deepEqual(back.entries[1], { ...ix.entries[1] });
  assert.equal(back.entries[2]!.problem, 'why');
  assert.equal(back.checkpoints[0]!.window.equals(ix.checkpoints[0]!.window), true);
  assert.deepEqual([back.format, back.compressedSize, back.uncompressedSize], ['gzip', 1234, 99999]);
});

test('an index of version 1 or with a hostile row decodes to undefined (rebuilt), never to a wrong entry', async () => {
  const doc = JSON.parse(gunzipSync(await encodeIndex(sample())).toString('utf8')) as { v: number; rows: unknown[][] };
  const variant = async (edit: (d: typeof doc) => void): Promise<unknown> => {
    const d = JSON.parse(JSON.stringify(doc)) as typeof doc;
    edit(d);
    return decodeIndex(gzipSync(Buffer.from(JSON.stringify(d))));
  };
  assert.equal(await variant((d) => (d.v = 1)), undefined);
  assert.equal(await variant((d) => (d.rows[0]![1] = 99)), undefined, 'unknown type');
  assert.equal(await variant((d) => (d.rows[0]![0] = 'caf\u20ac')), undefined, 'a name that is not a byte name');
  assert.equal(await variant((d) => (d.rows[0]![5] = -1)), undefined, 'negative size');
  assert.equal(await variant((d) => (d.rows[0]![10] = '12')), undefined, 'offset as a string');
  assert.equal(await variant((d) => (d.rows[0]![11] = [['user.x', '!!']])), undefined, 'xattr value not base64');
  assert.equal(await variant((d) => (d.rows[0]![12] = [1, 2, 3])), undefined, 'odd sparse map');
  assert.equal(await variant((d) => (d.rows[0] = { length: 14 } as unknown as unknown[])), undefined, 'row not an array');
  assert.equal(await decodeIndex(Buffer.from('not gzip')), undefined);
  assert.ok(await variant(() => {}), 'the unedited document decodes');
});
