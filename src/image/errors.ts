import { RegfsError } from '../lib/errors.js';

/** A layer whose bytes are not what its media type promises (garbage gzip, bad tar, bad TOC). */
export class LayerFormatError extends RegfsError {
  constructor(digest: string, why: string) {
    super('ERR_LAYER_FORMAT', `layer ${digest}: ${why}`, { digest });
  }
}
