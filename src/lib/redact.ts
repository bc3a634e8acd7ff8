/**
 * Strips what must never reach a log: userinfo and the query (pre-signed URLs carry their
 * signature there). Keeps scheme, host and path, which is what an operator needs.
 */
export function redactUrl(url: string | URL): string {
  let u: URL;
  try {
    u = new URL(String(url));
  } catch {
    return '<invalid url>';
  }
  const query = u.search ? '?<redacted>' : '';
  return `${u.protocol}//${u.host}${u.pathname}${query}`;
}
