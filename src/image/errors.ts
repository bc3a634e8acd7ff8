import { RegfsError } from '../lib/errors.js';

/** A layer whose bytes are not what its media type promises (garbage gzip, bad tar, bad TOC). */
export class LayerFormatError extends RegfsError {
  constructor(digest: string, why: string) {
    super('ERR_LAYER_FORMAT', `layer ${digest}: ${why}`, { digest });
  }
}

/**
 * A tar stream that breaks the format (bad checksum, malformed PAX record, oversized metadata).
 * Raised by the pure parser, which knows no digest; the layer opener wraps it in a
 * `LayerFormatError` naming the layer.
 */
export class TarFormatError extends RegfsError {
  constructor(why: string) {
    super('ERR_TAR_FORMAT', why);
  }
}

/** One member of a layer that cannot be served (a sparse map that does not fit its data, an unknown type). */
export class TarEntryUnreadableError extends RegfsError {
  constructor(path: string, why: string) {
    super('ERR_TAR_ENTRY_UNREADABLE', `${path}: ${why}`);
  }
}
