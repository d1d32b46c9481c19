import * as tf from '@tensorflow/tfjs';

/**
 * The global L2 norm of all gradients together, `sqrt(Σ_i ‖g_i‖²)`, as a number.
 * Non-finite gradients give a non-finite norm. Read asynchronously (WebGPU in Node has no synchronous read).
 */
export async function globalNorm(grads: Iterable<tf.Tensor>): Promise<number> {
  const list = [...grads];
  if (!list.length) return 0;
  const norm = tf.tidy(() => tf.sqrt(tf.addN(list.map((g) => tf.sum(tf.square(g))))));
  try {
    return (await norm.data())[0];
  } finally {
    norm.dispose();
  }
}

/**
 * Global-norm gradient clipping as `torch.nn.utils.clip_grad_norm_` (norm_type 2): when the total
 * norm exceeds `maxNorm`, every gradient is scaled by `maxNorm / (total + 1e-6)`; otherwise they
 * are left as they are (PyTorch multiplies by the clamped coefficient 1.0, a no-op).
 *
 * @param grads - gradients by parameter name; replaced in the map when scaled (old tensors disposed).
 * @param maxNorm - the norm to clip to; `<= 0` or not finite disables clipping.
 * @returns the total norm before clipping (what PyTorch returns and HF logs as `grad_norm`).
 */
export async function clipGradNorm(grads: Map<string, tf.Tensor>, maxNorm: number): Promise<number> {
  const total = await globalNorm(grads.values());
  if (!(maxNorm > 0) || !Number.isFinite(maxNorm) || !Number.isFinite(total)) return total;
  const coef = maxNorm / (total + 1e-6);
  if (coef >= 1) return total;
  for (const [name, g] of grads) {
    grads.set(name, tf.mul(g, coef));
    g.dispose();
  }
  return total;
}
