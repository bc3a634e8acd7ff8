import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { chmod, mkdir, unlink } from 'node:fs/promises';
import { dirname } from 'node:path';
import { RegfsError } from '../lib/errors.js';
import type { ImageStore } from '../view/image-store.js';
import type { MetricsSink } from './metrics.js';

export interface ControlDeps {
  store: ImageStore;
  metrics: MetricsSink;
  mountpoint: string;
  /** Fetches every layer of an opened image into the cache; resolves with the bytes. */
  prefetch(ref: string): Promise<number>;
  /** Layers a container runtime holds through the layer store (`layerStore`). */
  layersInUse(): { ref: string; layer: string; uses: number }[];
  /** Starts the next process, which takes the mount over (`regfs ctl restart`); throws when it cannot. */
  restart(): { previous: number; next: number };
}

/**
 * The control socket of `regfs serve`: HTTP/JSON on a unix socket (0600, so only its owner —
 * root for the service — can drive it). `regfs ctl` is the client.
 */
export async function serveControl(path: string, deps: ControlDeps): Promise<{ close(): Promise<void> }> {
  const send = (res: ServerResponse, status: number, body: unknown): void => {
    res.writeHead(status, { 'content-type': 'application/json' }).end(`${JSON.stringify(body, null, 2)}\n`);
  };
  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const url = new URL(req.url ?? '/', 'http://ctl');
    const ref = url.searchParams.get('ref') ?? '';
    switch (`${req.method} ${url.pathname}`) {
      case 'GET /ls': {
        const inUse = deps.layersInUse();
        return send(
          res,
          200,
          deps.store.list().map((s) => ({
            ref: s.ref.canonical,
            path: `${deps.mountpoint}/${s.path.join('/')}`,
            manifestDigest: s.img.manifestDigest,
            layers: s.img.manifest.layers.length,
            bytes: s.img.manifest.layers.reduce((n, l) => n + l.size, 0),
            idleSeconds: Math.round((Date.now() - s.lastUsed) / 1000),
            layersInUse: inUse.filter((u) => u.ref === s.ref.canonical).map(({ layer, uses }) => ({ layer, uses })),
          })),
        );
      }
      case 'GET /stats': {
        // The same numbers as /metrics, as prom-client's JSON: name → values with labels.
        const json = await deps.metrics.json();
        return send(res, 200, { images: deps.store.list().length, metrics: json });
      }
      case 'POST /prefetch': {
        const s = await deps.store.open(ref);
        const bytes = await deps.prefetch(s.ref.canonical);
        return send(res, 200, { ref: s.ref.canonical, bytes });
      }
      case 'POST /restart':
        return send(res, 202, deps.restart());
      case 'POST /forget':
        return send(res, 200, { ref, forgotten: await deps.store.forget(ref) });
      default:
        return send(res, 404, { error: `unknown request ${req.method} ${url.pathname}; try GET /ls, GET /stats, POST /prefetch?ref=, POST /forget?ref=, POST /restart` });
    }
  };
  const server: Server = createServer((req, res) => {
    handle(req, res).catch((e: Error & { code?: string }) => send(res, e instanceof RegfsError ? 400 : 500, { error: e.message, code: e.code }));
  });
  await mkdir(dirname(path), { recursive: true, mode: 0o700 });
  await unlink(path).catch(() => {});
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(path, () => resolve());
  });
  await chmod(path, 0o600);
  return {
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
        void unlink(path).catch(() => {});
      }),
  };
}
