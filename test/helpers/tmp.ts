import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createServer } from 'node:net';

export async function tempDir(prefix: string): Promise<{ path: string; cleanup: () => Promise<void> }> {
  const path = await mkdtemp(join(tmpdir(), `regfs-${prefix}-`));
  return { path, cleanup: () => rm(path, { recursive: true, force: true }) };
}

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

/** Thrown from a `waitFor` check: the awaited thing can never happen (its process exited). */
export class GiveUp extends Error {}

/**
 * Polls `check` until it is true. A check that throws means "not yet" (a server not listening
 * yet refuses connections), except a `GiveUp`, which ends the wait at once with its message.
 */
export async function waitFor(what: string, check: () => Promise<boolean>, timeoutMs = 20_000): Promise<void> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    try {
      if (await check()) return;
    } catch (e) {
      if (e instanceof GiveUp) throw e;
    }
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Waits until `get()` (a log, written asynchronously) matches `re`; fails with what it saw. */
export async function waitForMatch(get: () => string, re: RegExp, timeoutMs = 5000): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (!re.test(get())) {
    if (Date.now() > until) throw new Error(`no match for ${re} in:\n${get().slice(-2000)}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}
