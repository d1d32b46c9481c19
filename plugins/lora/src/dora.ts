/**
 * DoRA, weight-decomposed low-rank adaptation (Liu et al. 2024, arXiv:2402.09353), as HF PEFT's
 * `peft/tuners/lora/dora.py` (`DoraLinearLayer`, `DoraEmbeddingLayer`) and the `Dora*Variant`
 * classes of `peft/tuners/lora/variants.py` compute it. Per adapter a trainable magnitude m [out]
 * rescales each output row of the updated weight:
 *
 *   W' = m ⊙ (W + s·B·A) / ‖W + s·B·A‖,   the norm per output row (over the input axis),
 *
 * and the norm is a constant in the backward pass (paper, section 4.3; HF `weight_norm.detach()`).
 * The forward pass never forms W': with n = ‖W + s·B·A‖ and f = m / n,
 *
 *   y = base(x) + (f − 1) ⊙ (x Wᵀ) + f ⊙ s·(x Aᵀ) Bᵀ
 *
 * (HF's `result_dora = (mag_norm_scale - 1) * base_result + mag_norm_scale * lora_result * scaling`),
 * so the base's bias is added once, unscaled. This file holds the math; `layer.ts` wires it into
 * {@link LoraLayer} and {@link LoraEmbedding}.
 */
import * as tf from '@tensorflow/tfjs';

/**
 * ‖W + Δ‖ per output feature (`torch.linalg.norm(weight, dim=1)` on HF's [out, in] layout):
 * W, Δ [out, in] with `outAxis` 0 (linear layers), or [vocab, dim] with `outAxis` 1 (embeddings,
 * whose output features are the columns). Returns [out], float32, a new tensor; differentiable
 * (wrap it in {@link detached} to take it as a constant).
 */
export function weightNorm(weight: tf.Tensor2D, delta: tf.Tensor2D, outAxis: 0 | 1 = 0): tf.Tensor1D {
  return tf.tidy(() => tf.sqrt(tf.sum(tf.square(tf.add(weight, delta)), 1 - outAxis)) as tf.Tensor1D);
}

/**
 * The value of `compute()` as a constant for gradients (PyTorch's `.detach()`; tfjs has no
 * stopGradient). `compute` runs inside a custom op's forward function, which tfjs does not record
 * on the gradient tape (engine `kernelDepth` > 0), so nothing it reads (A, B, W) gets a gradient
 * through it and no backward work is spent on it. The op's only input is a fresh constant, so the
 * tape prunes the op itself too.
 * @returns a new tensor
 */
export function detached<T extends tf.Tensor>(compute: () => T): T {
  const op = tf.customGrad(((a: tf.Tensor) => ({ value: tf.tidy(compute), gradFunc: () => tf.zerosLike(a) })) as unknown as Parameters<typeof tf.customGrad>[0]);
  const anchor = tf.scalar(0);
  try {
    return (op as (a: tf.Tensor) => T)(anchor);
  } finally {
    anchor.dispose();
  }
}

/**
 * The DoRA term added to the base output: (f − 1) ⊙ baseNoBias + f ⊙ loraScaled with f = m / n.
 * @param baseNoBias - x Wᵀ without the bias, [..., out]
 * @param loraScaled - s·(x Aᵀ) Bᵀ, [..., out]
 * @param magnitude - m [out] (trainable)
 * @param norm - n [out], detached
 * @returns [..., out], a new tensor
 */
export function doraDelta(baseNoBias: tf.Tensor, loraScaled: tf.Tensor, magnitude: tf.Tensor1D, norm: tf.Tensor1D): tf.Tensor {
  return tf.tidy(() => {
    const f = tf.div(magnitude, norm); // [out], broadcast over the last axis
    return tf.add(tf.mul(tf.sub(f, 1), baseNoBias), tf.mul(f, loraScaled));
  });
}

/**
 * The merged weight of HF's `DoraLinearVariant.merge_unsafe` (and `DoraEmbeddingVariant`'s):
 * W' = (m / n) ⊙ (W + Δ) with n = ‖W + Δ‖ per output feature, broadcast along `outAxis`.
 * @param weight - W, [out, in] (`outAxis` 0) or [vocab, dim] (`outAxis` 1)
 * @param delta - Δ = s·B·A in W's layout
 * @param magnitude - m [out]
 * @returns the new weight and n (keep n: unmerging needs the norm of the weights before merging,
 *   as HF caches `weight_norm`)
 */
export function doraMergedWeight(weight: tf.Tensor2D, delta: tf.Tensor2D, magnitude: tf.Tensor1D, outAxis: 0 | 1 = 0): { weight: tf.Tensor2D; norm: tf.Tensor1D } {
  return tf.tidy(() => {
    const norm = weightNorm(weight, delta, outAxis);
    const f = tf.div(magnitude, norm).reshape(outAxis === 0 ? [-1, 1] : [1, -1]);
    return { weight: tf.mul(f, tf.add(weight, delta)) as tf.Tensor2D, norm };
  });
}

/**
 * The inverse of {@link doraMergedWeight} (HF's `DoraLinearVariant.unmerge`): W = W' / (m / n) − Δ,
 * with n the norm kept at merge time; layouts as there.
 * @returns a new tensor
 */
export function doraUnmergedWeight(merged: tf.Tensor2D, delta: tf.Tensor2D, magnitude: tf.Tensor1D, norm: tf.Tensor1D, outAxis: 0 | 1 = 0): tf.Tensor2D {
  return tf.tidy(() => tf.sub(tf.div(merged, tf.div(magnitude, norm).reshape(outAxis === 0 ? [-1, 1] : [1, -1])), delta) as tf.Tensor2D);
}
