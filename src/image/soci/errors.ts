import { RegfsError } from '../../lib/errors.js';

/**
 * A SOCI artifact (index manifest, zTOC, checkpoints) that is malformed or disagrees with its
 * layer: a layer-format problem (its code), told apart by class because it is never fatal to a
 * mount — the layer falls back to the local pass.
 */
export class ZtocError extends RegfsError {
  constructor(why: string, digest?: string) {
    super('ERR_LAYER_FORMAT', digest ? `zTOC for layer ${digest}: ${why}` : `zTOC: ${why}`, digest ? { digest } : {});
  }
}
