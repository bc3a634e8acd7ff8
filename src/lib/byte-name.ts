/**
 * Names are bytes. A tar member's path, a symlink target and an xattr name may hold any byte
 * except NUL and need not be UTF-8, and the kernel hands us and takes back raw bytes. regfs
 * carries every such name internally as a "byte name": a JS string in which each UTF-16 code unit
 * is one byte (0–255), i.e. `Buffer#toString('latin1')`. It round-trips every byte sequence
 * exactly, compares and hashes like the bytes, and costs nothing for ASCII (digests, "rootfs",
 * "manifest.json" are the same string either way).
 *
 * Convert only at the edges: tar/TOC parsing (bytes → byte name), the FUSE binding (byte name ↔
 * kernel bytes) and human-facing text (logs, errors, JSON output: `displayName`). Xattr values are
 * never strings: they stay `Buffer`s from the layer to the kernel.
 */
export type ByteName = string;

/** Raw bytes → byte name (lossless). */
export function byteName(bytes: Uint8Array): ByteName {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('latin1');
}

/** Byte name → raw bytes (lossless). */
export function nameBytes(name: ByteName): Buffer {
  return Buffer.from(name, 'latin1');
}

/**
 * A UTF-8 JS string (user input, JSON text such as an eStargz TOC) → byte name. Lone surrogates
 * cannot come from valid UTF-8 and are encoded as U+FFFD, as Buffer does.
 */
export function byteNameFromUtf8(text: string): ByteName {
  return Buffer.from(text, 'utf8').toString('latin1');
}

/** Byte name → text for humans: UTF-8 where it decodes, U+FFFD where it does not. Never feed it back. */
export function displayName(name: ByteName): string {
  return Buffer.from(name, 'latin1').toString('utf8');
}

/** True when every code unit is a byte, i.e. the string is a well-formed byte name. */
export function isByteName(s: string): boolean {
  for (let i = 0; i < s.length; i++) if (s.charCodeAt(i) > 0xff) return false;
  return true;
}
