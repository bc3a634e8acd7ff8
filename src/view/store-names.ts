import { isDigest } from '../lib/digest.js';
import { AuthError, NotFoundError } from '../lib/errors.js';
import { type ImageReference, isRegistryHost, isRepositoryComponent, isTag, parseReference } from '../registry/index.js';

/**
 * How a name in the `serve` store is read: `<store>/<registry>/<repo…>/<tag or digest>/`. The
 * grammar is registry/reference.ts's (distribution's), so the store accepts exactly the
 * references `regfs mount` does — sha512 digests included.
 */

/** A name directly under the store root: a registry `host[:port]`. */
export function isStoreRegistry(name: string): boolean {
  return isRegistryHost(name);
}

/** What a name under `<registry>/<path…>/` may stand for, in the order the store tries them. */
export interface StoreNameCandidates {
  /** The image this name would be (a tag or digest of the repository `path`), if it can be one. */
  image: ImageReference | undefined;
  /** Whether it can be a deeper repository component (tried when there is no such image). */
  component: boolean;
}

export function storeNameCandidates(registry: string, path: readonly string[], name: string): StoreNameCandidates {
  let image: ImageReference | undefined;
  const digest = isDigest(name);
  if (path.length > 0 && (digest || isTag(name))) {
    try {
      image = parseReference(`${registry}/${path.join('/')}${digest ? '@' : ':'}${name}`);
    } catch {
      image = undefined; // e.g. a name over the 255-character limit: not an image
    }
  }
  return { image, component: isRepositoryComponent(name) };
}

/**
 * Whether resolving a candidate image failed because there is no such image — then the name may
 * be a deeper repository component. Registries with token auth often answer a repository that does
 * not exist with a 401 for its scope; refused credentials, the network and 5xx are real errors for
 * the caller, not an empty directory.
 */
export function meansNoSuchImage(e: unknown): boolean {
  return e instanceof NotFoundError || (e instanceof AuthError && !e.credentialsRejected);
}
