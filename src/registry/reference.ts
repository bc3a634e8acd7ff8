import { InvalidReferenceError } from '../lib/errors.js';
import { type Digest, parseDigest } from '../lib/digest.js';

/** A fully normalised image reference, as docker and containerd understand it. */
export interface ImageReference {
  /** Registry host as written after normalisation, e.g. `docker.io`, `localhost:5000`. */
  readonly registry: string;
  /** Host actually contacted: `docker.io` is served by `registry-1.docker.io`. */
  readonly endpoint: string;
  readonly repository: string;
  readonly tag: string | undefined;
  readonly digest: Digest | undefined;
  /** The canonical string, e.g. `docker.io/library/alpine:latest`. */
  readonly canonical: string;
}

// Grammar from distribution/reference (reference.go). Kept as separate pieces so an error can
// name the part that failed.
const DOMAIN_COMPONENT = '(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])';
const DOMAIN_RE = new RegExp(`^(?:${DOMAIN_COMPONENT}(?:\\.${DOMAIN_COMPONENT})*|\\[[a-fA-F0-9:]+\\])(?::[0-9]+)?$`);
const PATH_COMPONENT_RE = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$/;
const TAG_RE = /^[\w][\w.-]{0,127}$/;
const NAME_TOTAL_LENGTH_MAX = 255;

/** `host[:port]` as a reference's registry part may be (distribution's domain grammar). */
export function isRegistryHost(s: string): boolean {
  return DOMAIN_RE.test(s);
}

/** One `/`-separated component of a repository path: lowercase, with `.`, `_`, `__`, `-` between. */
export function isRepositoryComponent(s: string): boolean {
  return PATH_COMPONENT_RE.test(s);
}

export function isTag(s: string): boolean {
  return TAG_RE.test(s);
}

export const DOCKER_HUB = 'docker.io';
const DOCKER_HUB_ENDPOINT = 'registry-1.docker.io';

/** Parses and normalises `[host[:port]/]repo[:tag][@digest]`; defaults the tag to `latest`. */
export function parseReference(input: string): ImageReference {
  if (input.length === 0) throw new InvalidReferenceError(input, 'reference', 'is empty');
  if (/\s/.test(input)) throw new InvalidReferenceError(input, 'reference', 'contains whitespace');

  let rest = input;
  let digest: Digest | undefined;
  const at = rest.indexOf('@');
  if (at >= 0) {
    const d = rest.slice(at + 1);
    try {
      digest = parseDigest(d);
    } catch (e) {
      throw new InvalidReferenceError(input, 'digest', (e as Error).message.replace(/^invalid digest "[^"]*": /, ''));
    }
    rest = rest.slice(0, at);
  }

  let tag: string | undefined;
  const lastSlash = rest.lastIndexOf('/');
  const colon = rest.lastIndexOf(':');
  if (colon > lastSlash) {
    tag = rest.slice(colon + 1);
    rest = rest.slice(0, colon);
    if (!TAG_RE.test(tag)) {
      throw new InvalidReferenceError(input, `tag ${JSON.stringify(tag)}`, 'must match [A-Za-z0-9_][A-Za-z0-9_.-]{0,127}');
    }
  }
  if (rest.length === 0) throw new InvalidReferenceError(input, 'repository', 'is empty');

  // docker's rule (normalize.go splitDockerDomain): the first component is a registry host only
  // if it looks like one; otherwise the name lives on Docker Hub.
  let registry = DOCKER_HUB;
  let path = rest;
  const slash = rest.indexOf('/');
  if (slash >= 0) {
    const first = rest.slice(0, slash);
    if (first.includes('.') || first.includes(':') || first === 'localhost' || first !== first.toLowerCase()) {
      registry = first;
      path = rest.slice(slash + 1);
    }
  }
  if (registry === 'index.docker.io') registry = DOCKER_HUB;
  if (!DOMAIN_RE.test(registry)) throw new InvalidReferenceError(input, `registry host ${JSON.stringify(registry)}`, 'is not a valid host[:port]');
  if (registry === DOCKER_HUB && !path.includes('/')) path = `library/${path}`;
  if (path.length === 0) throw new InvalidReferenceError(input, 'repository', 'is empty');

  for (const component of path.split('/')) {
    if (!PATH_COMPONENT_RE.test(component)) {
      const why = component === '' ? 'is empty' : component !== component.toLowerCase() ? 'must be lowercase' : 'may hold only [a-z0-9] separated by ".", "_", "__" or "-"';
      throw new InvalidReferenceError(input, `repository component ${JSON.stringify(component)}`, why);
    }
  }
  if (registry.length + 1 + path.length > NAME_TOTAL_LENGTH_MAX) {
    throw new InvalidReferenceError(input, 'name', `is longer than ${NAME_TOTAL_LENGTH_MAX} characters`);
  }

  if (tag === undefined && digest === undefined) tag = 'latest';
  const canonical = `${registry}/${path}${tag !== undefined ? `:${tag}` : ''}${digest !== undefined ? `@${digest}` : ''}`;
  return {
    registry,
    endpoint: registry === DOCKER_HUB ? DOCKER_HUB_ENDPOINT : registry,
    repository: path,
    tag,
    digest,
    canonical,
  };
}

/** What to ask the registry for: the digest wins over the tag when both are given. */
export function manifestReference(ref: ImageReference): string {
  return ref.digest ?? ref.tag ?? 'latest';
}

/** Loopback hosts may be spoken to over plain HTTP without being named `--insecure`. */
export function isLoopbackHost(hostPort: string): boolean {
  const host = hostPort.startsWith('[') ? hostPort.slice(1, hostPort.indexOf(']')) : hostPort.replace(/:\d+$/, '');
  return host === 'localhost' || host === '::1' || /^127\.\d+\.\d+\.\d+$/.test(host);
}
