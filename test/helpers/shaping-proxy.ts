import { connect, createServer, type Server, type Socket } from 'node:net';

export interface ShapingOptions {
  /** One-way delay added in each direction (ms). */
  delayMs: number;
  /** Bandwidth cap per connection and direction (bytes/s); 0 = none. */
  bytesPerSec: number;
}

/**
 * A TCP proxy that behaves like a WAN link: every byte is delayed by `delayMs` each way and each
 * connection is capped at `bytesPerSec` per direction (the kernel here has no netem).
 */
export async function startShapingProxy(target: { host: string; port: number }, opts: ShapingOptions): Promise<{ port: number; host: string; close(): Promise<void> }> {
  const sockets = new Set<Socket>();
  const pipe = (from: Socket, to: Socket): void => {
    // One ordered queue per direction, drained by a single timer: bytes must never be reordered.
    const queue: { at: number; piece: Buffer | 'end' | 'destroy' }[] = [];
    let nextFree = 0; // when the link is free to send again (ms)
    let queued = 0;
    let timer: NodeJS.Timeout | undefined;
    const pump = (): void => {
      timer = undefined;
      const now = performance.now();
      while (queue.length > 0 && queue[0]!.at <= now) {
        const { piece } = queue.shift()!;
        if (piece === 'end') {
          to.end();
          continue;
        }
        if (piece === 'destroy') {
          // The other side went away: so does this one, but only after what it sent arrived. After
          // an orderly end, writes may still sit in `to`'s buffer: destroying now would cut them
          // (a client saw "unexpected EOF" in bodies the server had sent whole).
          if (to.writableEnded && !to.writableFinished) to.once('finish', () => to.destroy());
          else to.destroy();
          continue;
        }
        queued -= piece.length;
        if (!to.destroyed) to.write(piece);
      }
      if (queued < 1 << 20 && from.isPaused()) from.resume();
      if (queue.length > 0) timer = setTimeout(pump, Math.max(0, queue[0]!.at - performance.now()));
    };
    const enqueue = (at: number, piece: Buffer | 'end' | 'destroy'): void => {
      queue.push({ at, piece });
      if (!timer) timer = setTimeout(pump, Math.max(0, queue[0]!.at - performance.now()));
    };
    from.on('data', (chunk: Buffer) => {
      const now = performance.now();
      for (let i = 0; i < chunk.length; i += 16384) {
        const piece = chunk.subarray(i, i + 16384);
        const start = Math.max(now, nextFree);
        nextFree = start + (opts.bytesPerSec > 0 ? (piece.length / opts.bytesPerSec) * 1000 : 0);
        queued += piece.length;
        enqueue(nextFree + opts.delayMs, piece);
      }
      if (queued > 4 << 20) from.pause();
    });
    from.on('end', () => enqueue(Math.max(performance.now(), nextFree) + opts.delayMs, 'end'));
    from.on('close', () => enqueue(Math.max(performance.now(), nextFree) + opts.delayMs, 'destroy'));
    from.on('error', () => {});
  };
  const server: Server = createServer((client) => {
    const upstream = connect(target.port, target.host);
    // The proxy writes timed 16 KiB pieces: with Nagle on, a piece waits for the ACK of the one
    // before, and a delayed ACK (up to 40 ms) then stalls a small response for 2–3 RTTs of the
    // emulated link (measured: a 64 KiB range took 65–150 ms here, 29 ms for a fresh curl).
    client.setNoDelay(true);
    upstream.setNoDelay(true);
    sockets.add(client);
    sockets.add(upstream);
    client.on('close', () => void sockets.delete(client));
    upstream.on('close', () => void sockets.delete(upstream));
    pipe(client, upstream);
    pipe(upstream, client);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as { port: number }).port;
  return {
    port,
    host: `127.0.0.1:${port}`,
    close: () =>
      new Promise((r) => {
        for (const s of sockets) s.destroy();
        server.close(() => r());
      }),
  };
}
