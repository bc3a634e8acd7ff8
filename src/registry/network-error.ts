import { NetworkError } from '../lib/errors.js';

/** OpenSSL's answer when what came back is not a TLS record: the server speaks plain HTTP. */
const NOT_TLS = new Set(['ERR_SSL_WRONG_VERSION_NUMBER', 'ERR_SSL_PACKET_LENGTH_TOO_LONG', 'ERR_SSL_HTTP_REQUEST']);
const CERT = new Set([
  'DEPTH_ZERO_SELF_SIGNED_CERT', 'SELF_SIGNED_CERT_IN_CHAIN', 'UNABLE_TO_VERIFY_LEAF_SIGNATURE', 'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'CERT_HAS_EXPIRED', 'CERT_NOT_YET_VALID', 'ERR_TLS_CERT_ALTNAME_INVALID',
]);
const RESET = new Set(['ECONNRESET', 'EPIPE', 'ECONNABORTED', 'ENETUNREACH', 'EHOSTUNREACH', 'ETIMEDOUT', 'UND_ERR_SOCKET', 'UND_ERR_CLOSED', 'UND_ERR_CONNECT_TIMEOUT']);

function codeOf(e: unknown): string | undefined {
  for (let c: unknown = e, depth = 0; c && depth < 4; c = (c as { cause?: unknown }).cause, depth++) {
    const code = (c as { code?: unknown }).code;
    if (typeof code === 'string' && code !== 'UND_ERR_CONNECT') return code;
  }
  return undefined;
}

/**
 * Says a socket-level failure (what undici and Node throw: `getaddrinfo ENOTFOUND`, OpenSSL
 * strings) in one line that names the host and the fix, as a typed error; undefined for anything
 * else (aborts, HTTP-level errors), which the caller rethrows as it is.
 *
 * `answeredBefore` is whether this host has answered us at all. A host that never did and whose
 * name does not resolve, or that refuses the connection, is a mistake in the reference or the
 * setup: permanent, so a mount fails at once instead of retrying for the whole budget. Once it has
 * answered, the same errors mean a registry restarting or a network blip: transient, retried.
 */
export function networkError(host: string, url: string, e: unknown, answeredBefore: boolean, role: 'registry' | 'token service' = 'registry'): NetworkError | undefined {
  const code = codeOf(e);
  if (code === undefined) return undefined;
  const ctx = { url, cause: e };
  if (code === 'ENOTFOUND' || code === 'EAI_AGAIN' || code === 'EAI_NONAME' || code === 'EAI_FAIL') {
    return new NetworkError('ERR_DNS', host, `cannot resolve ${role} host ${hostname(host)} (${code}): check ${role === 'registry' ? 'the image reference' : 'the realm the registry names'} and this machine's DNS`, ctx, !answeredBefore && code !== 'EAI_AGAIN');
  }
  if (code === 'ECONNREFUSED') {
    return new NetworkError('ERR_CONNECT', host, `${host} refused the connection: is the ${role} running, and is the port right?`, ctx, !answeredBefore);
  }
  if (NOT_TLS.has(code)) {
    return new NetworkError('ERR_TLS', host, `${host} did not answer TLS; if it serves plain HTTP, use --insecure ${host}`, ctx, true);
  }
  if (CERT.has(code)) {
    return new NetworkError('ERR_TLS', host, `${host} presented a TLS certificate that is not trusted (${code}): add its CA with --ca-file (or registries."${host}".caFile)`, ctx, true);
  }
  if (RESET.has(code)) {
    return new NetworkError('ERR_NETWORK', host, `connection to ${host} failed (${code})`, ctx, false);
  }
  return undefined;
}

function hostname(host: string): string {
  return host.startsWith('[') ? host.slice(0, host.indexOf(']') + 1) : host.replace(/:\d+$/, '');
}
