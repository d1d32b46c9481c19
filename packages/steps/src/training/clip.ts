import * as tf from '@tensorflow/tfjs';

/**
 * The global L2 norm of all gradients together, `sqrt(Σ_i ‖g_i‖²)`, as a device scalar (no read
 * to the host; the caller disposes it). Non-finite gradients give a non-finite norm; no gradients, 0.
 */
export function globalNorm(grads: Iterable<tf.Tensor>): tf.Scalar {
  const list = [...grads];
  if (!list.length) return tf.scalar(0);
  return tf.tidy(() => {
    // Summed one add at a time, not with tf.addN: tfjs-webgpu's AddN binds every input in one shader and does
    // not split them at maxStorageBuffersPerShaderStage (8 by default on Dawn) as its Concat does, so with
    // more gradients its pipeline is invalid and the whole command buffer it is submitted in is dropped. In
    // order from the first, this is the sum WASM's AddN computes, to the bit.
    let sq = tf.sum(tf.square(list[0]));
    for (const g of list.slice(1)) sq = tf.add(sq, tf.sum(tf.square(g)));
    return tf.sqrt(sq) as tf.Scalar;
  });
}

/**
 * Global-norm gradient clipping as `torch.nn.utils.clip_grad_norm_` (norm_type 2) does it, on the
 * device: `coef = min(maxNorm / (total + 1e-6), 1)` as a float32 scalar tensor, multiplied into every
 * gradient (PyTorch multiplies by the clamped coefficient always, so below `maxNorm` the gradients
 * are multiplied by exactly 1). Nothing is read back, so the step never waits for the device here.
 * A non-finite total gives non-finite gradients, as in PyTorch (`error_if_nonfinite=False`); the
 * caller checks the returned norm when it reads it.
 * Source: torch/nn/utils/clip_grad.py (`clip_grad_norm_`).
 *
 * @param grads - gradients by parameter name; each is replaced in the map by its scaled copy (the old
 *   tensor disposed) unless clipping is off.
 * @param maxNorm - the norm to clip to; `<= 0` or not finite turns clipping off (the norm is still computed).
 * @returns the total norm before clipping as a device scalar (what PyTorch returns and HF logs as
 *   `grad_norm`); the caller disposes it.
 */
export function clipGradNorm(grads: Map<string, tf.Tensor>, maxNorm: number): tf.Scalar {
  const total = globalNorm(grads.values());
  if (!(maxNorm > 0) || !Number.isFinite(maxNorm)) return total;
  const coef = tf.tidy(() => tf.minimum(tf.div(maxNorm, tf.add(total, 1e-6)), 1));
  try {
    for (const [name, g] of grads) {
      grads.set(name, tf.mul(g, coef));
      g.dispose();
    }
  } finally {
    coef.dispose();
  }
  return total;
}
