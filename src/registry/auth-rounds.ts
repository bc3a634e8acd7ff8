import type { Dispatcher } from 'undici';
import { redactUrl } from '../lib/redact.js';
import type { Authenticator } from './authenticator.js';

/**
 * One exchange with a registry under its credentials, as every request regfs makes to a
 * registry's own origin runs it (reads in client.ts, pushes in authorized-http.ts): the cached
 * Authorization first; a 401 runs the challenge once (distribution spec "Token Authentication":
 * the WWW-Authenticate answer names realm, service and scope); a second 401 is an auth failure.
 * `send` must be repeatable (bodies are Buffers).
 */
export async function withAuthRounds(
  auth: Authenticator,
  host: string,
  scope: string,
  url: string,
  signal: AbortSignal,
  send: (authorization: string | undefined) => Promise<Dispatcher.ResponseData>,
): Promise<Dispatcher.ResponseData> {
  let authorization = await auth.authorization(host, scope, signal);
  for (let round = 0; ; round++) {
    const res = await send(authorization);
    if (res.statusCode !== 401) return res;
    await res.body.dump();
    if (round >= 1) throw await auth.refused(host, scope, authorization, redactUrl(url));
    const v = res.headers['www-authenticate'];
    authorization = await auth.challenged(host, scope, Array.isArray(v) ? v[0] : v, authorization, signal);
  }
}
