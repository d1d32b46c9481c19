/**
 * Seeded randomness local to the data pipeline (splits, subsets, per-epoch shuffles).
 *
 * Each use draws from its own generator, seeded from the pipeline seed and a label, so that e.g.
 * the split does not change when the batch size does, and the order of epoch 3 can be recomputed
 * without replaying epochs 0 to 2 (which is what makes {@link BatchIterator} resumable).
 */

import { mulberry32 } from '@peftkit/models';

/** The seeded mulberry32 stream of @peftkit/models (uniform floats in [0, 1) from a 32-bit seed), which every draw here uses. */
export { mulberry32 };

/** A 32-bit seed from a base seed and a label (FNV-1a over the label, mixed with the seed). */
export function deriveSeed(seed: number, label: string): number {
  let h = (0x811c9dc5 ^ (seed >>> 0)) >>> 0;
  for (let i = 0; i < label.length; i++) {
    h ^= label.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  // murmur3 finaliser, so nearby seeds give unrelated streams
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b) >>> 0;
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35) >>> 0;
  h ^= h >>> 16;
  return h >>> 0;
}

/** Shuffles `a` in place (Fisher-Yates) with `rand`, and returns it. */
export function shuffleInPlace<T>(a: T[], rand: () => number): T[] {
  for (let i = a.length - 1; i > 0; i--) {
    const j = Math.floor(rand() * (i + 1));
    const t = a[i];
    a[i] = a[j];
    a[j] = t;
  }
  return a;
}

/** `[0, 1, ..., n - 1]` in a seeded random order. */
export function permutation(n: number, seed: number): number[] {
  return shuffleInPlace(Array.from({ length: n }, (_, i) => i), mulberry32(seed));
}
