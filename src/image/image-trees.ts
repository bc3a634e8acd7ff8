import { OnceMap } from '../lib/single-flight.js';
import type { Layer } from './layer.js';
import { type BuildProblem, type ImageNode, buildLayerTree, emptyRoot, mergeLayer, resolveImplied } from './tree.js';

/**
 * The trees of one image, built on first use and kept: each layer's own, and the merge of all.
 * A layer's view needs the layers below it too: its implied directories take their metadata from
 * them. So the merge runs bottom up, one step per layer; step i resolves layer i against the
 * merge of 0..i-1, then merges it. Concurrent callers share one build; a failed step (a layer
 * that cannot be indexed) is tried again by the next caller.
 */
export class ImageTrees {
  private readonly layerTrees = new OnceMap<number, ImageNode>();
  private readonly steps = new OnceMap<number, ImageNode>();

  constructor(
    readonly layers: Layer[],
    private readonly report: (layer: string, p: BuildProblem) => void,
  ) {}

  /** Layer i as an overlayfs lower dir (implied directories resolved). */
  async layerTree(i: number): Promise<ImageNode> {
    // The layer's own failure first (it names this layer's problem); then the layers below, which
    // its implied directories need.
    await this.ownTree(i);
    await this.step(i);
    return this.ownTree(i);
  }

  rootfs(): Promise<ImageNode> {
    return this.layers.length === 0 ? Promise.resolve(emptyRoot()) : this.step(this.layers.length - 1);
  }

  private ownTree(i: number): Promise<ImageNode> {
    const layer = this.layers[i]!;
    return this.layerTrees.get(i, async () => buildLayerTree(await layer.entries(), i, (problem) => this.report(layer.descriptor.digest, problem)));
  }

  /**
   * The merge of layers 0..i. Every step returns the same object, which later steps keep
   * modifying: only the last step's result is handed out (as rootfs).
   */
  private step(i: number): Promise<ImageNode> {
    return this.steps.get(i, async () => {
      // Both settle before either error is thrown, so a broken image always fails with its lowest
      // broken layer's error (and errno), whichever index happens to finish first.
      const [b, o] = await Promise.allSettled([i === 0 ? emptyRoot() : this.step(i - 1), this.ownTree(i)]);
      if (b.status === 'rejected') throw b.reason;
      if (o.status === 'rejected') throw o.reason;
      const below = b.value;
      const own = o.value;
      // Synchronous from here: no other step can run between resolving and merging.
      resolveImplied(own, below);
      mergeLayer(below, own);
      return below;
    });
  }
}
