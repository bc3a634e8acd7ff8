import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { closeSync, existsSync, fstatSync, openSync, read, readSync, statSync, write, writeFileSync } from 'node:fs';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';

const readFd = promisify(read);
const writeFd = (fd: number, buf: Buffer): Promise<number> => new Promise((resolve, reject) => write(fd, buf, (e, n) => (e ? reject(e) : resolve(n))));
import { fdNameFor } from '../../src/fs/fd-keeper.js';
import { FdHolder } from '../../src/fs/fd-holder.js';
import { fdPass } from '../../src/fs/fd-pass.js';
import { SystemdFdStore } from '../../src/fs/systemd-fd-store.js';
import { tempDir, waitFor } from '../helpers/tmp.js';

const run = promisify(execFile);
const CHILD = join(import.meta.dirname, '../helpers/fuse-child.js');
const FUSE_READ = 15;
const FUSE_RELEASE = 18;
const FUSE_FLUSH = 25;
/** include/uapi/linux/fuse.h: set in `unique` of a request the kernel queued again. */
const FUSE_UNIQUE_RESEND = 1n << 63n;

test('regfs-fd-holder keeps a descriptor its owner closed, hands out copies of it, and exits once it holds nothing', async () => {
  const tmp = await tempDir('fd-holder');
  const file = join(tmp.path, 'f');
  writeFileSync(file, 'held bytes');
  const holder = new FdHolder(join(tmp.path, 'holder.sock'));
  try {
    await holder.ensureRunning();
    assert.equal(holder.ping(), 0);
    const fd = openSync(file, 'r');
    holder.put('a', [fd]);
    closeSync(fd);
    assert.equal(holder.ping(), 1);
    const got = holder.get('a')!;
    assert.equal(got.length, 1);
    assert.equal(fstatSync(got[0]!).ino, statSync(file).ino);
    const buf = Buffer.alloc(32);
    assert.equal(buf.toString('latin1', 0, readSync(got[0]!, buf, 0, 32, 0)), 'held bytes');
    closeSync(got[0]!);
    assert.equal(holder.get('missing'), undefined);
    holder.delete('a');
    await waitFor('the holder to exit', async () => holder.ping() === undefined, 5000);
    assert.equal(existsSync(holder.socketPath), false);
  } finally {
    await tmp.cleanup();
  }
});

test('FDSTORE=1 reaches the notify socket with FDNAME and the descriptor attached (what systemd keeps)', async () => {
  const tmp = await tempDir('fdstore');
  const sock = join(tmp.path, 'notify.sock');
  const file = join(tmp.path, 'f');
  writeFileSync(file, 'x');
  // A receiver that does what systemd does with the datagram: take the message and the fds.
  const py = spawn('python3', ['-c', `
import socket, os, sys, json
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1]); print("bound", flush=True)
msg, fds, flags, addr = socket.recv_fds(s, 4096, 4)
print(json.dumps({"msg": msg.decode(), "inos": [os.fstat(f).st_ino for f in fds]}), flush=True)
`, sock], { stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  py.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  try {
    await waitFor('the receiver to bind', async () => out.startsWith('bound'), 5000);
    const fd = openSync(file, 'r');
    new SystemdFdStore(sock, new Map()).put(fdNameFor('/mnt/x'), [fd]);
    closeSync(fd);
    await waitFor('the receiver to answer', async () => out.split('\n').length >= 3, 5000);
    const got = JSON.parse(out.split('\n')[1]!) as { msg: string; inos: number[] };
    assert.deepEqual(got, { msg: `FDSTORE=1\nFDNAME=${fdNameFor('/mnt/x')}`, inos: [statSync(file).ino] });
    assert.match(fdNameFor('/mnt/x'), /^regfs-fuse-[0-9a-f]{16}$/);
  } finally {
    py.kill();
    await tmp.cleanup();
  }
});

/** mountinfo lines of mounts at `mnt` (read from /proc: never touches the mount itself). */
async function fuseMounts(mnt: string): Promise<string[]> {
  return (await readFile('/proc/self/mountinfo', 'utf8')).split('\n').filter((l) => l.split(' ')[4] === mnt);
}

test('kill -9 of the daemon: the held /dev/fuse keeps the mount (1 mount, no ENOTCONN), FUSE_NOTIFY_RESEND hands the unanswered read to the next process, and the reader gets its 5 bytes', async () => {
  const tmp = await tempDir('takeover');
  const mnt = join(tmp.path, 'mnt');
  await mkdir(mnt);
  const holder = new FdHolder(join(tmp.path, 'holder.sock'));
  const name = fdNameFor(mnt);
  let child: ChildProcess | undefined;
  let reader: ChildProcess | undefined;
  let fd: number | undefined;
  try {
    child = spawn(process.execPath, [CHILD, mnt, holder.socketPath, name], { stdio: ['ignore', 'pipe', 'inherit'] });
    let childOut = '';
    child.stdout!.on('data', (d: Buffer) => (childOut += d.toString()));
    await waitFor('the child mount', async () => childOut.includes('ready\n'), 20_000);
    assert.equal((await fuseMounts(mnt)).length, 1);

    reader = spawn('python3', ['-c', 'import os,sys; fd=os.open(sys.argv[1], os.O_RDONLY); sys.stdout.write(os.read(fd, 100).decode())', join(mnt, 'slow')], { stdio: ['ignore', 'pipe', 'pipe'] });
    let readerOut = '';
    let readerErr = '';
    reader.stdout!.on('data', (d: Buffer) => (readerOut += d.toString()));
    reader.stderr!.on('data', (d: Buffer) => (readerErr += d.toString()));
    const readerExit = new Promise<number | null>((r) => reader!.once('exit', (c) => r(c)));
    await waitFor('the read to reach the daemon', async () => childOut.includes('reading /slow'), 10_000);

    child.kill('SIGKILL');
    await new Promise((r) => child!.once('exit', r));
    // The daemon is gone; its descriptor lives on in the holder.
    assert.equal(holder.ping(), 1);
    assert.equal((await fuseMounts(mnt)).length, 1);
    const st = await run('python3', ['-c', 'import os,sys; os.stat(sys.argv[1]); print("ok")', mnt], { timeout: 5000 });
    assert.equal(st.stdout, 'ok\n');
    assert.equal(reader.exitCode, null, `the reader ended: ${readerErr}`);

    // The next process: take the descriptor, ask the kernel to queue the lost read again.
    const fds = holder.get(name)!;
    assert.equal(fds.length, 1);
    fd = fds[0]!;
    assert.equal(fdPass().notifyResend(fd), 0);
    const req = Buffer.alloc((1 << 20) + 4096);
    const { bytesRead } = await readFd(fd, req, 0, req.length, null);
    assert.ok(bytesRead >= 40 + 40, `short request: ${bytesRead} bytes`);
    assert.equal(req.readUInt32LE(4), FUSE_READ);
    const unique = req.readBigUInt64LE(8);
    assert.equal(unique & FUSE_UNIQUE_RESEND, FUSE_UNIQUE_RESEND);
    assert.equal(req.readBigUInt64LE(40 + 8), 0n); // fuse_read_in.offset
    // Answer it as the new daemon would: fuse_out_header + the bytes.
    const data = Buffer.from('hello');
    const reply = Buffer.alloc(16 + data.length);
    reply.writeUInt32LE(reply.length, 0);
    reply.writeInt32LE(0, 4);
    reply.writeBigUInt64LE(unique, 8);
    data.copy(reply, 16);
    assert.equal(await writeFd(fd, reply), reply.length);
    // The reader's close() sends FLUSH (and RELEASE): answer what follows until the connection goes.
    const after: number[] = [];
    void (async () => {
      for (;;) {
        const r = await readFd(fd!, req, 0, req.length, null).catch(() => undefined);
        if (!r) return;
        const op = req.readUInt32LE(4);
        after.push(op);
        const ok = op === FUSE_FLUSH || op === FUSE_RELEASE;
        const h = Buffer.alloc(16);
        h.writeUInt32LE(16, 0);
        h.writeInt32LE(ok ? 0 : -38 /* ENOSYS */, 4);
        h.writeBigUInt64LE(req.readBigUInt64LE(8), 8);
        await writeFd(fd!, h).catch(() => undefined);
      }
    })();

    assert.equal(await readerExit, 0, readerErr);
    assert.ok(after.includes(FUSE_FLUSH), `requests after the read: ${after.join(',')}`);
    assert.equal(readerOut, 'hello');
    assert.equal(readerErr, '');
    assert.equal((await fuseMounts(mnt)).length, 1);
  } finally {
    reader?.kill('SIGKILL');
    child?.kill('SIGKILL');
    const conn = (await fuseMounts(mnt))[0]?.split(' ')[2]?.split(':')[1];
    await run('fusermount', ['-u', '-z', mnt]).catch(() => undefined);
    // Abort the connection so nothing waits on it, then let go of every descriptor.
    if (conn) await writeFile(`/sys/fs/fuse/connections/${conn}/abort`, '1').catch(() => undefined);
    if (fd !== undefined) closeSync(fd);
    if (holder.ping() !== undefined) holder.delete(name);
    await tmp.cleanup();
  }
});
