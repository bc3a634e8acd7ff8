import { RegfsError } from '../../lib/errors.js';

/**
 * A SOCI artifact (index manifest, zTOC, checkpoints) that is malformed or disagrees with its
 * layer. Never fatal to a mount: the layer falls back to the local pass.
 */
export class ZtocError extends RegfsError {
  constructor(why: string, digest?: string) {
    super('ERR_ZTOC', digest ? `zTOC for layer ${digest}: ${why}` : `zTOC: ${why}`, digest ? { digest } : {});
  }
}
