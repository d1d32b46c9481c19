/**
 * The backend-neutral rotary op: `x cos + rotate_half(x) sin` over [B, H, T, D] (contract and reference in
 * kernels/reference/rotary.ts). On a backend with the `PeftkitRotary` kernel (WASM) it is one pass over x; its
 * gradient is the same kernel with `transpose` set, applied to dy. Elsewhere it is the composed tfjs ops
 * (split, negate, concat, two products and a sum), which autodiff differentiates.
 *
 * Why a kernel: composed, rotate_half's split and concat and their gradients took 86 ms of a SmolLM-shaped LoRA step
 * on WASM (1 x 128, 30 layers; docs/benchmarks.md), about half of the step's work outside the products.
 */
import * as tf from '@tensorflow/tfjs';

/** The kernel's name, shared by every backend's config. */
export const PEFTKIT_ROTARY = 'PeftkitRotary';

/** The kernel's attrs: `transpose` applies the transposed rotation (the gradient's). */
export interface PeftkitRotaryAttrs {
  transpose: boolean;
}

function runRotary(x: tf.Tensor, cos: tf.Tensor, sin: tf.Tensor, transpose: boolean): tf.Tensor {
  return tf.engine().runKernel(PEFTKIT_ROTARY, { x, cos, sin } as unknown as tf.NamedTensorMap, { transpose } as unknown as tf.NamedAttrMap) as tf.Tensor;
}

/**
 * dL/dx = the transposed rotation of dy. cos and sin come from positions, never from parameters: their gradient is
 * left at zero.
 */
export const rotaryGradConfig: tf.GradConfig = {
  kernelName: PEFTKIT_ROTARY,
  inputsToSave: ['cos', 'sin'],
  gradFunc: (dy, saved, attrs) => {
    const [cos, sin] = saved as tf.Tensor[];
    const { transpose } = attrs as unknown as PeftkitRotaryAttrs;
    return { x: () => runRotary(dy as tf.Tensor, cos, sin, !transpose), cos: () => tf.zerosLike(cos), sin: () => tf.zerosLike(sin) };
  },
};

/** `rotate_half`: [x1, x2] → [−x2, x1] over the last axis (HF's layout, not interleaved pairs). */
function rotateHalf(x: tf.Tensor): tf.Tensor {
  const [x1, x2] = tf.split(x, 2, -1);
  return tf.concat([tf.neg(x2), x1], -1);
}

/**
 * Rotary position embedding, `x cos + rotate_half(x) sin` (transformers' `apply_rotary_pos_emb`; Su et al. 2021).
 * @param x - [B, H, T, D], D even
 * @param cos - [B or 1, 1, T, D]
 * @param sin - the same shape as cos
 * @returns [B, H, T, D]
 * @throws Error (the kernel's) when D is odd or cos/sin do not have the shape [B or 1, 1, T, D].
 */
export function applyRotary(x: tf.Tensor4D, cos: tf.Tensor, sin: tf.Tensor): tf.Tensor4D {
  if (tf.getKernel(PEFTKIT_ROTARY, tf.getBackend())) return runRotary(x, cos, sin, false) as tf.Tensor4D;
  return tf.tidy(() => tf.add(tf.mul(x, cos), tf.mul(rotateHalf(x), sin))) as tf.Tensor4D;
}
