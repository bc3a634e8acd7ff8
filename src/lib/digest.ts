import { InvalidDigestError } from './errors.js';

declare const digestBrand: unique symbol;
/** An OCI content digest (`algorithm:hex`) that has been validated. */
export type Digest = string & { readonly [digestBrand]: true };

// OCI image-spec descriptor.md "Digests": registered algorithms and their encoded lengths.
const HEX_LENGTH: Record<string, number> = { sha256: 64, sha512: 128 };

export function parseDigest(input: string): Digest {
  const colon = input.indexOf(':');
  if (colon <= 0) throw new InvalidDigestError(input, 'expected algorithm:hex, e.g. sha256:…');
  const algorithm = input.slice(0, colon);
  const encoded = input.slice(colon + 1);
  const len = HEX_LENGTH[algorithm];
  if (len === undefined) throw new InvalidDigestError(input, `unsupported algorithm ${JSON.stringify(algorithm)} (sha256 or sha512)`);
  if (encoded.length !== len) throw new InvalidDigestError(input, `${algorithm} needs ${len} hex characters, got ${encoded.length}`);
  if (!/^[a-f0-9]+$/.test(encoded)) throw new InvalidDigestError(input, 'the encoded part must be lowercase hex');
  return input as Digest;
}

export function isDigest(input: string): input is Digest {
  try {
    parseDigest(input);
    return true;
  } catch {
    return false;
  }
}

export function digestAlgorithm(d: Digest): 'sha256' | 'sha512' {
  return d.slice(0, d.indexOf(':')) as 'sha256' | 'sha512';
}

export function digestHex(d: Digest): string {
  return d.slice(d.indexOf(':') + 1);
}
