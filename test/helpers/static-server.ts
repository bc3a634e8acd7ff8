import { createReadStream } from 'node:fs';
import { readdir, stat } from 'node:fs/promises';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import { join, normalize } from 'node:path';

export interface StaticServer {
  url: string;
  port: number;
  requests: { method: string; path: string; headers: IncomingHttpHeaders; status: number }[];
  /** Statuses to answer next, in order, instead of serving the file (e.g. an expired URL's 403). */
  failNext: number[];
  close(): Promise<void>;
}

/** A Range-capable file server over a directory: the blob storage the redirect middleware points at. */
export async function startStaticServer(root: string): Promise<StaticServer> {
  const requests: StaticServer['requests'] = [];
  const failNext: number[] = [];
  const server: Server = createServer(async (req, res) => {
    const path = decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname);
    const record = (status: number): void => void requests.push({ method: req.method ?? '', path, headers: req.headers, status });
    const forced = failNext.shift();
    if (forced !== undefined) {
      record(forced);
      return void res.writeHead(forced).end();
    }
    const file = join(root, normalize(path).replace(/^(\.\.[/\\])+/, ''));
    let size: number;
    try {
      const st = await stat(file);
      if (st.isDirectory()) {
        // A plain HTML index, enough for clients that browse (rclone's http backend).
        const names = await readdir(file, { withFileTypes: true });
        record(200);
        const links = names.map((d) => `<a href="${encodeURIComponent(d.name)}${d.isDirectory() ? '/' : ''}">${d.name}</a>`).join('\n');
        return void res.writeHead(200, { 'content-type': 'text/html' }).end(`<html><body>\n${links}\n</body></html>\n`);
      }
      if (!st.isFile()) throw new Error('not a file');
      size = st.size;
    } catch {
      record(404);
      return void res.writeHead(404).end();
    }
    const m = /^bytes=(\d+)-(\d*)$/.exec(req.headers.range ?? '');
    if (m) {
      const start = Number(m[1]);
      const end = Math.min(size - 1, m[2] ? Number(m[2]) : size - 1);
      if (start >= size) {
        record(416);
        return void res.writeHead(416, { 'content-range': `bytes */${size}` }).end();
      }
      record(206);
      res.writeHead(206, { 'content-length': end - start + 1, 'content-range': `bytes ${start}-${end}/${size}`, 'accept-ranges': 'bytes' });
      if (req.method === 'HEAD') return void res.end();
      return void createReadStream(file, { start, end }).pipe(res);
    }
    record(200);
    res.writeHead(200, { 'content-length': size, 'accept-ranges': 'bytes' });
    if (req.method === 'HEAD') return void res.end();
    createReadStream(file).pipe(res);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as { port: number }).port;
  return {
    url: `http://127.0.0.1:${port}/`,
    port,
    requests,
    failNext,
    close: () => new Promise((r) => { server.closeAllConnections(); server.close(() => r()); }),
  };
}
