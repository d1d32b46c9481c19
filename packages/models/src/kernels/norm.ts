/**
 * The backend-neutral norm kernels (contract and reference: kernels/reference/norm.ts): `PeftkitNorm`, x [..., D],
 * weight [D] (and bias [D] for LayerNorm) → y and the per-row statistics ([..., 1]: μ and σ, or r); `PeftkitNormGrad`,
 * x, the statistics, weight and dy → dx. nn/layers.ts `layerNorm` and `rmsNorm` call them where the backend has them
 * (WASM) and compose tfjs ops elsewhere; the weight's and bias's gradients stay composed (a LoRA run's norms are
 * frozen: they are not computed at all).
 *
 * Why kernels: composed, a LayerNorm is 8 kernels forward and 10 backward over [T, D] and its row statistics; GPT-2
 * small's 25 LayerNorms took about 30 ms of a LoRA step on WASM (1 x 128; docs/benchmarks.md).
 */
import * as tf from '@tensorflow/tfjs';
import type { NormKind } from './reference/norm.js';

export type { NormKind };

/** The kernels' names, shared by every backend's configs. */
export const PEFTKIT_NORM = 'PeftkitNorm';
export const PEFTKIT_NORM_GRAD = 'PeftkitNormGrad';

/** The kernels' attrs. */
export interface PeftkitNormAttrs {
  kind: NormKind;
  eps: number;
}

/** Whether the current backend has both kernels. */
export function hasNormKernels(): boolean {
  return Boolean(tf.getKernel(PEFTKIT_NORM, tf.getBackend()) && tf.getKernel(PEFTKIT_NORM_GRAD, tf.getBackend()));
}

/**
 * The norm by the backend's kernel (check {@link hasNormKernels} first). Not differentiable by itself: the caller's
 * custom gradient calls {@link normGradKernel}.
 * @param x - [..., D] float32
 * @param weight - [D] float32
 * @param bias - [D] float32 for LayerNorm; omitted for RMSNorm
 * @param eps - added to the variance (LayerNorm) or the mean square (RMSNorm)
 * @returns y [..., D]; `a` [..., 1]: μ (LayerNorm) or r (RMSNorm); `b` [..., 1]: σ (LayerNorm only)
 * @throws Error (the kernel's) when the shapes or dtypes do not match.
 */
export function normKernel(kind: NormKind, x: tf.Tensor, weight: tf.Tensor, bias: tf.Tensor | undefined, eps: number): { y: tf.Tensor; a: tf.Tensor; b?: tf.Tensor } {
  const inputs = kind === 'layer' ? { x, weight, bias: bias! } : { x, weight };
  const out = tf.engine().runKernel(PEFTKIT_NORM, inputs as unknown as tf.NamedTensorMap, { kind, eps } as unknown as tf.NamedAttrMap) as tf.Tensor[];
  return { y: out[0], a: out[1], ...(kind === 'layer' ? { b: out[2] } : {}) };
}

/**
 * dx by the backend's kernel, from what {@link normKernel} returned.
 * @param a - [..., 1]: μ or r
 * @param b - [..., 1]: σ (LayerNorm); omitted for RMSNorm
 * @returns dx [..., D]
 */
export function normGradKernel(kind: NormKind, x: tf.Tensor, a: tf.Tensor, b: tf.Tensor | undefined, weight: tf.Tensor, dy: tf.Tensor): tf.Tensor {
  const inputs = kind === 'layer' ? { x, a, b: b!, weight, dy } : { x, a, weight, dy };
  return tf.engine().runKernel(PEFTKIT_NORM_GRAD, inputs as unknown as tf.NamedTensorMap, { kind, eps: 0 } as unknown as tf.NamedAttrMap) as tf.Tensor;
}
