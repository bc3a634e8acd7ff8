import type { Digest } from '../lib/digest.js';
import { digestHex } from '../lib/digest.js';
import { DigestMismatchError, ProtocolError } from '../lib/errors.js';
import { sha256Digest } from '../lib/hash.js';
import { redactUrl } from '../lib/redact.js';
import { type AuthorizedHttp, headerOf, httpError } from './authorized-http.js';
import type { RepoLocator } from './client.js';

/** Blobs above this go up in PATCH chunks of this size (distribution spec "Pushing a blob in chunks"). */
const CHUNK = 16 << 20;

/**
 * Pushes (OCI distribution spec "Push"): HEAD first so blobs already there are not sent again,
 * then POST to open an upload and PUT with the digest (monolithic) or PATCH chunks then PUT;
 * manifests by PUT to a tag or digest. Returns what it did so callers can report it.
 */
export class RegistryPusher {
  constructor(private readonly http: AuthorizedHttp) {}

  async hasBlob(repo: RepoLocator, digest: Digest, signal: AbortSignal): Promise<boolean> {
    const path = `/v2/${repo.repository}/blobs/${digest}`;
    const res = await this.http.send(repo, 'HEAD', path, { push: true, signal });
    await res.body.dump();
    if (res.statusCode === 200) return true;
    if (res.statusCode === 404) return false;
    throw await httpError(res, { url: redactUrl(this.http.baseUrl(repo.endpoint) + path), digest });
  }

  /** Uploads `data` as blob `digest` unless the repository has it; true when bytes were sent. */
  async pushBlob(repo: RepoLocator, digest: Digest, data: Buffer, signal: AbortSignal): Promise<boolean> {
    const actual = sha256Digest(data);
    if (actual !== digest) throw new DigestMismatchError(digest, actual, 'blob to push', { digest });
    if (await this.hasBlob(repo, digest, signal)) return false;
    const start = `/v2/${repo.repository}/blobs/uploads/`;
    const ctx = { url: redactUrl(this.http.baseUrl(repo.endpoint) + start), digest };
    const opened = await this.http.send(repo, 'POST', start, { push: true, signal, headers: { 'content-length': '0' } });
    await opened.body.dump();
    if (opened.statusCode !== 202) throw await httpError(opened, ctx);
    let location = this.location(opened, repo, ctx);
    if (data.length > CHUNK) {
      for (let at = 0; at < data.length; at += CHUNK) {
        const part = data.subarray(at, Math.min(data.length, at + CHUNK));
        const res = await this.http.send(repo, 'PATCH', location, {
          push: true,
          signal,
          body: Buffer.from(part),
          headers: { 'content-type': 'application/octet-stream', 'content-range': `${at}-${at + part.length - 1}`, 'content-length': String(part.length) },
        });
        await res.body.dump();
        if (res.statusCode !== 202) throw await httpError(res, ctx);
        location = this.location(res, repo, ctx);
      }
    }
    const done = withQuery(location, 'digest', digest);
    const body = data.length > CHUNK ? Buffer.alloc(0) : data;
    const res = await this.http.send(repo, 'PUT', done, { push: true, signal, body, headers: { 'content-type': 'application/octet-stream', 'content-length': String(body.length) } });
    await res.body.dump();
    if (res.statusCode !== 201) throw await httpError(res, ctx);
    return true;
  }

  /** PUT a manifest or index; returns its digest and the `OCI-Subject` header (referrers API support). */
  async putManifest(repo: RepoLocator, reference: string, mediaType: string, bytes: Buffer, signal: AbortSignal): Promise<{ digest: Digest; subject: string | undefined }> {
    const digest = sha256Digest(bytes) as Digest;
    const path = `/v2/${repo.repository}/manifests/${reference}`;
    const res = await this.http.send(repo, 'PUT', path, { push: true, signal, body: bytes, headers: { 'content-type': mediaType, 'content-length': String(bytes.length) } });
    await res.body.dump().catch(() => {});
    if (res.statusCode !== 201) throw await httpError(res, { url: redactUrl(this.http.baseUrl(repo.endpoint) + path), digest });
    const said = headerOf(res, 'docker-content-digest');
    if (said && said !== digest) throw new DigestMismatchError(digest, said, `manifest pushed as ${reference}`, { digest });
    return { digest, subject: headerOf(res, 'oci-subject') };
  }

  private location(res: { headers: Record<string, string | string[] | undefined> }, repo: RepoLocator, ctx: { url: string; digest: Digest }): string {
    const loc = res.headers['location'];
    const v = Array.isArray(loc) ? loc[0] : loc;
    if (!v) throw new ProtocolError('upload answer without a Location', ctx);
    return new URL(v, `${this.http.baseUrl(repo.endpoint)}/v2/${repo.repository}/blobs/uploads/`).toString();
  }
}

function withQuery(url: string, key: string, value: string): string {
  const u = new URL(url);
  u.searchParams.set(key, value);
  return u.toString();
}

/** The referrers tag schema (distribution spec "Referrers Tag Schema"): `<alg>-<hex>`. */
export function referrersTag(digest: Digest): string {
  return `${digest.slice(0, digest.indexOf(':'))}-${digestHex(digest)}`;
}
