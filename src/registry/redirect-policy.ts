import { PlainHttpRefusedError, ProtocolError } from '../lib/errors.js';
import { redactUrl } from '../lib/redact.js';

/**
 * Where a registry may send a blob read. Range reads are not digest-checked on their own (only a
 * whole blob is), so bytes that came over plain HTTP from a host nobody allowed could be altered
 * on the way unnoticed: an https registry redirecting to `http://` is refused unless that
 * storage host is itself allowed plain HTTP (`--insecure`, loopback). Schemes other than http(s)
 * are never followed.
 */
export function checkRedirectTarget(from: string, target: string, plainAllowed: (host: string) => boolean, digest: string): void {
  const src = new URL(from);
  const dst = new URL(target);
  if (dst.protocol !== 'https:' && dst.protocol !== 'http:') {
    throw new ProtocolError(`${src.host} redirected ${digest} to a ${dst.protocol} URL; only http(s) is followed`, { digest, url: redactUrl(target) });
  }
  if (dst.protocol === 'http:' && !plainAllowed(dst.host)) {
    throw new PlainHttpRefusedError(
      dst.host,
      `${src.host} redirected a read of ${digest} to plain HTTP at ${dst.host}; refused because byte ranges are not digest-checked on their own. If ${dst.host} is trusted, allow it with --insecure ${dst.host}`,
      { digest, url: redactUrl(target) },
    );
  }
}
