/**
 * The cache's CPU and disk work, run in a worker thread so the thread that answers FUSE only
 * dispatches: a cold read profile spent 8% in crc32 and 8% in sha256 on the main thread (#16).
 * Messages: `write` (pwrite fetched bytes, shared with the main thread through a
 * SharedArrayBuffer, and return a crc32 per block) and `hash` (digest of file ranges).
 */
import { closeSync, openSync, readSync, writeSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { parentPort } from 'node:worker_threads';
import { crc32 } from 'node:zlib';

export type IoRequest =
  | { id: number; op: 'write'; fd: number; data: Uint8Array; position: number; blockSize: number }
  | { id: number; op: 'hash'; algo: string; pieces: { path: string; position: number; length: number }[] };

export type IoResponse = { id: number; crcs?: Uint32Array; hex?: string; error?: { message: string; code?: string } };

function handle(req: IoRequest): Omit<IoResponse, 'id'> {
  if (req.op === 'write') {
    let done = 0;
    while (done < req.data.length) done += writeSync(req.fd, req.data, done, req.data.length - done, req.position + done);
    const n = Math.ceil(req.data.length / req.blockSize);
    const crcs = new Uint32Array(n);
    for (let i = 0; i < n; i++) crcs[i] = crc32(req.data.subarray(i * req.blockSize, Math.min(req.data.length, (i + 1) * req.blockSize)));
    return { crcs };
  }
  const h = createHash(req.algo);
  const buf = Buffer.allocUnsafe(1 << 20);
  for (const p of req.pieces) {
    const fd = openSync(p.path, 'r');
    try {
      let done = 0;
      while (done < p.length) {
        const n = readSync(fd, buf, 0, Math.min(buf.length, p.length - done), p.position + done);
        if (n === 0) throw Object.assign(new Error(`${p.path} ends before ${p.position + p.length}`), { code: 'ESHORT' });
        h.update(buf.subarray(0, n));
        done += n;
      }
    } finally {
      closeSync(fd);
    }
  }
  return { hex: h.digest('hex') };
}

parentPort?.on('message', (req: IoRequest) => {
  let res: IoResponse;
  try {
    res = { id: req.id, ...handle(req) };
  } catch (e) {
    res = { id: req.id, error: { message: (e as Error).message, code: (e as NodeJS.ErrnoException).code } };
  }
  parentPort!.postMessage(res);
});
