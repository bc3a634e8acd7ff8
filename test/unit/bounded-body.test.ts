import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Readable } from 'node:stream';
import { readBounded } from '../../src/registry/bounded-body.js';

class TooBig extends Error {}
const tooBig = () => new TooBig('too large');

/** A body of `chunks`, counting how many of them were pulled before it was destroyed. */
function source(chunks: Buffer[], contentLength?: string) {
  let pulled = 0;
  const body = Readable.from(
    (function* () {
      for (const c of chunks) {
        pulled++;
        yield c;
      }
    })(),
  );
  return { res: { headers: contentLength === undefined ? {} : { 'content-length': contentLength }, body }, pulled: () => pulled, body };
}

test('a body of exactly the limit (3 chunks, 30 bytes, limit 30) is returned whole', async () => {
  const parts = [Buffer.alloc(10, 1), Buffer.alloc(10, 2), Buffer.alloc(10, 3)];
  const s = source(parts, '30');
  const out = await readBounded(s.res, 30, tooBig);
  assert.deepEqual(out, Buffer.concat(parts));
});

test('a Content-Length of limit + 1 is refused before a single chunk is read, and the body destroyed', async () => {
  const s = source([Buffer.alloc(31)], '31');
  await assert.rejects(readBounded(s.res, 30, tooBig), TooBig);
  assert.equal(s.pulled(), 0);
  assert.equal(s.body.destroyed, true);
});

test('a body with no length that runs past the limit stops at the chunk that crosses it (2 of 100 pulled)', async () => {
  const s = source(Array.from({ length: 100 }, () => Buffer.alloc(20)));
  await assert.rejects(readBounded(s.res, 30, tooBig), TooBig);
  assert.equal(s.pulled(), 2);
  assert.equal(s.body.destroyed, true);
});

test('a lying Content-Length (10) does not let 40 bytes through a limit of 30', async () => {
  const s = source([Buffer.alloc(20), Buffer.alloc(20)], '10');
  await assert.rejects(readBounded(s.res, 30, tooBig), TooBig);
});

test('an empty body is an empty buffer; an array-valued header uses its first value', async () => {
  assert.equal((await readBounded(source([]).res, 30, tooBig)).length, 0);
  const s = source([Buffer.alloc(5)], undefined);
  await assert.rejects(readBounded({ headers: { 'content-length': ['99', '5'] }, body: s.body }, 30, tooBig), TooBig);
});
