import { spawn } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { CredentialHelperError, ConfigError } from '../lib/errors.js';

export interface Credential {
  username?: string | undefined;
  password?: string | undefined;
  /** OAuth2 refresh token (docker's `identitytoken`, or a helper's `<token>` username). */
  identityToken?: string | undefined;
  /** A bearer token used as-is, without a token service round trip. */
  registryToken?: string | undefined;
}

export interface CredentialProvider {
  get(registry: string): Promise<Credential | undefined>;
}

interface DockerConfigFile {
  auths?: Record<string, { auth?: string; username?: string; password?: string; identitytoken?: string; registrytoken?: string }>;
  credHelpers?: Record<string, string>;
  credsStore?: string;
}

export interface DockerCredentialsOptions {
  /** Path of docker's config.json; a missing file means "no credentials". */
  dockerConfigPath?: string | undefined;
  /** Explicit credentials per registry host; win over the docker config. */
  explicit?: Readonly<Record<string, Credential>>;
  helperTimeoutMs?: number;
}

/** docker.io is stored under several historical keys (docker/cli config/credentials). */
function hostAliases(registry: string): string[] {
  if (registry === 'docker.io' || registry === 'registry-1.docker.io' || registry === 'index.docker.io') {
    return ['https://index.docker.io/v1/', 'index.docker.io', 'docker.io', 'registry-1.docker.io'];
  }
  return [registry];
}

/** `https://host:port/v1/` → `host:port`, the way docker matches `auths` keys. */
function normaliseKey(key: string): string {
  return key.replace(/^https?:\/\//, '').replace(/\/.*$/, '');
}

export function createDockerCredentials(opts: DockerCredentialsOptions): CredentialProvider {
  let config: Promise<DockerConfigFile> | undefined;
  const load = (): Promise<DockerConfigFile> =>
    (config ??= opts.dockerConfigPath === undefined
      ? Promise.resolve({})
      : readFile(opts.dockerConfigPath, 'utf8').then(
          (text) => {
            try {
              return JSON.parse(text) as DockerConfigFile;
            } catch (e) {
              throw new ConfigError(`docker config ${opts.dockerConfigPath} is not valid JSON: ${(e as Error).message}`);
            }
          },
          (e: NodeJS.ErrnoException) => {
            if (e.code === 'ENOENT') return {};
            throw new ConfigError(`cannot read docker config ${opts.dockerConfigPath}: ${e.message}`);
          },
        ));
  const helperCache = new Map<string, Promise<Credential | undefined>>();

  return {
    async get(registry: string): Promise<Credential | undefined> {
      for (const alias of hostAliases(registry)) {
        const c = opts.explicit?.[alias];
        if (c) return c;
      }
      const cfg = await load();
      const aliases = new Set(hostAliases(registry));
      const helper = Object.entries(cfg.credHelpers ?? {}).find(([k]) => aliases.has(k) || aliases.has(normaliseKey(k)))?.[1];
      const entry = Object.entries(cfg.auths ?? {}).find(([k]) => aliases.has(k) || aliases.has(normaliseKey(k)))?.[1];
      if (entry && (entry.auth || entry.username || entry.identitytoken || entry.registrytoken)) {
        return fromAuthEntry(entry);
      }
      const store = helper ?? cfg.credsStore;
      if (!store) return undefined;
      const key = `${store}\0${registry}`;
      let p = helperCache.get(key);
      if (!p) {
        p = runHelper(store, hostAliases(registry)[0]!, opts.helperTimeoutMs ?? 10_000);
        helperCache.set(key, p);
        p.catch(() => helperCache.delete(key));
      }
      return p;
    },
  };
}

function fromAuthEntry(e: NonNullable<DockerConfigFile['auths']>[string]): Credential {
  let username = e.username;
  let password = e.password;
  if (e.auth) {
    const decoded = Buffer.from(e.auth, 'base64').toString('utf8');
    const i = decoded.indexOf(':');
    if (i > 0) {
      username = decoded.slice(0, i);
      password = decoded.slice(i + 1);
    }
  }
  return { username, password, identityToken: e.identitytoken || undefined, registryToken: e.registrytoken || undefined };
}

/** The docker-credential-helpers protocol: `get` with the server URL on stdin, JSON on stdout. */
function runHelper(name: string, serverUrl: string, timeoutMs: number): Promise<Credential | undefined> {
  return new Promise((resolve, reject) => {
    const child = spawn(`docker-credential-${name}`, ['get'], { stdio: ['pipe', 'pipe', 'pipe'], timeout: timeoutMs });
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    child.on('error', (e: NodeJS.ErrnoException) =>
      reject(new CredentialHelperError(name, serverUrl, e.code === 'ENOENT' ? `docker-credential-${name} is not on PATH` : e.message)),
    );
    child.on('close', (code, sig) => {
      if (code !== 0) {
        // The protocol's "not found" answer is an error exit with this text on stdout.
        if (/credentials not found/i.test(out + err)) return resolve(undefined);
        return reject(new CredentialHelperError(name, serverUrl, sig ? `killed by ${sig}` : `exit ${code}: ${(err || out).trim().slice(0, 200)}`));
      }
      try {
        const j = JSON.parse(out) as { Username?: string; Secret?: string };
        if (j.Username === '<token>') return resolve({ identityToken: j.Secret });
        resolve({ username: j.Username, password: j.Secret });
      } catch {
        reject(new CredentialHelperError(name, serverUrl, 'did not print JSON'));
      }
    });
    // A helper may exit without reading stdin; that EPIPE is not our error, its exit status is.
    child.stdin.on('error', () => {});
    child.stdin.end(serverUrl);
  });
}
