/**
 * The `PeftkitAdamW` kernel: one AdamW update of one parameter, p, g, m, v → new p, m, v (contract and reference:
 * kernels/reference/adamw.ts, the same bits as the composed tfjs ops). @peftkit/steps' AdamW calls it where the
 * backend has it (WASM) and composes tfjs ops elsewhere.
 *
 * Why a kernel: composed, an update is 11 small kernels per parameter; a LoRA adapter has a few dozen to a few
 * hundred parameter tensors, so the update of the SmolLM-shaped model's 120 took 20 ms, almost all of it the ops'
 * overhead in JavaScript (docs/benchmarks.md).
 */
import * as tf from '@tensorflow/tfjs';
import type { AdamWScalars } from './reference/adamw.js';

export type { AdamWScalars };

/** The kernel's name, shared by every backend's config. */
export const PEFTKIT_ADAMW = 'PeftkitAdamW';

/** Whether the current backend has the kernel. */
export function hasAdamWKernel(): boolean {
  return Boolean(tf.getKernel(PEFTKIT_ADAMW, tf.getBackend()));
}

/**
 * One AdamW update by the backend's kernel (check {@link hasAdamWKernel} first).
 * @param p - the parameter's value, float32, any shape
 * @param g - its gradient, p's shape
 * @param m - the first moment, p's shape (zeros before the first update)
 * @param v - the second moment, p's shape
 * @returns the new p, m and v (new tensors; the inputs are left as they were)
 * @throws Error (the kernel's) when the shapes or dtypes differ.
 */
export function adamWKernel(p: tf.Tensor, g: tf.Tensor, m: tf.Tensor, v: tf.Tensor, s: AdamWScalars): [tf.Tensor, tf.Tensor, tf.Tensor] {
  return tf.engine().runKernel(PEFTKIT_ADAMW, { p, g, m, v } as unknown as tf.NamedTensorMap, { ...s } as unknown as tf.NamedAttrMap) as [tf.Tensor, tf.Tensor, tf.Tensor];
}
