import type { Layer } from './layer.js';
import { type BuildProblem, type ImageNode, buildLayerTree, mergeLayers } from './tree.js';

/**
 * The trees of one image, built on first use and kept: each layer's own, and the merge of all.
 * Concurrent callers share one build; a failed build is tried again by the next caller.
 */
export class ImageTrees {
  private readonly layerTrees: (Promise<ImageNode> | undefined)[];
  private merged: Promise<ImageNode> | undefined;

  constructor(
    readonly layers: Layer[],
    private readonly report: (layer: string, p: BuildProblem) => void,
  ) {
    this.layerTrees = layers.map(() => undefined);
  }

  layerTree(i: number): Promise<ImageNode> {
    let p = this.layerTrees[i];
    if (!p) {
      const layer = this.layers[i]!;
      p = layer.entries().then((entries) => buildLayerTree(entries, i, (problem) => this.report(layer.descriptor.digest, problem)));
      this.layerTrees[i] = p;
      p.catch(() => (this.layerTrees[i] = undefined));
    }
    return p;
  }

  rootfs(): Promise<ImageNode> {
    if (!this.merged) {
      this.merged = Promise.all(this.layers.map((_l, i) => this.layerTree(i))).then(mergeLayers);
      this.merged.catch(() => (this.merged = undefined));
    }
    return this.merged;
  }
}
