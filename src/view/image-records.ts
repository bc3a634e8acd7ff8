import { mkdir, readdir, readFile, rename, unlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { writeFileAtomic } from '../lib/atomic-write.js';
import type { Digest } from '../lib/digest.js';
import { sha256Digest, sha256Hex } from '../lib/hash.js';
import { parseManifestBody } from '../registry/manifest.js';
import { type ImageReference, type ResolvedImage, parseReference } from '../registry/index.js';

/** What `serve` remembers of a resolved image, so a restart lists and opens it with no network. */
interface ImageRecord {
  ref: string;
  manifestDigest: string;
  indexDigest?: string | undefined;
  manifest: string; // base64, byte-exact
  config: string; // base64
  seenAt: number;
}

const sha256 = sha256Digest;

export class ImageRecords {
  private constructor(private readonly dir: string) {}

  static async open(cacheDir: string): Promise<ImageRecords> {
    const dir = join(cacheDir, 'images');
    await mkdir(dir, { recursive: true, mode: 0o700 });
    return new ImageRecords(dir);
  }

  private pathOf(canonical: string): string {
    return join(this.dir, `${sha256Hex(canonical)}.json`);
  }

  async save(img: ResolvedImage): Promise<void> {
    const rec: ImageRecord = {
      ref: img.reference.canonical,
      manifestDigest: img.manifestDigest,
      indexDigest: img.indexDigest,
      manifest: img.manifestBytes.toString('base64'),
      config: img.configBytes.toString('base64'),
      seenAt: Date.now(),
    };
    const path = this.pathOf(rec.ref);
    await writeFileAtomic(path, JSON.stringify(rec));
  }

  async remove(canonical: string): Promise<void> {
    await unlink(this.pathOf(canonical)).catch(() => {});
  }

  /** Every record that still checks out (digests verified); broken ones are skipped. */
  async loadAll(): Promise<ResolvedImage[]> {
    const out: ResolvedImage[] = [];
    for (const name of await readdir(this.dir).catch(() => [] as string[])) {
      if (!name.endsWith('.json')) continue;
      try {
        const rec = JSON.parse(await readFile(join(this.dir, name), 'utf8')) as ImageRecord;
        const img = fromRecord(rec, parseReference(rec.ref));
        if (img) out.push(img);
      } catch {
        // A record we cannot read is only a lost shortcut: the image resolves over the network.
      }
    }
    return out;
  }
}

function fromRecord(rec: ImageRecord, reference: ImageReference): ResolvedImage | undefined {
  const manifestBytes = Buffer.from(rec.manifest, 'base64');
  const configBytes = Buffer.from(rec.config, 'base64');
  if (sha256(manifestBytes) !== rec.manifestDigest) return undefined;
  const manifest = parseManifestBody(manifestBytes, undefined);
  if (manifest.kind !== 'manifest' || sha256(configBytes) !== manifest.config.digest) return undefined;
  return {
    reference,
    indexDigest: rec.indexDigest as Digest | undefined,
    manifestDigest: rec.manifestDigest as Digest,
    manifestMediaType: manifest.mediaType,
    manifestBytes,
    manifest,
    configBytes,
    config: JSON.parse(configBytes.toString('utf8')) as unknown,
  };
}
