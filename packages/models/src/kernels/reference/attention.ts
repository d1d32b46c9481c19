/**
 * The reference for `PeftkitAttention` (../webgpu/attention.ts): scaled dot-product attention composed of tfjs
 * ops, which every backend runs and which the fused kernel must match (with dropout, given as
 * `(p) => seededDropout(p, rate, seed0, seed1)`). It is also the path every backend but WebGPU takes.
 */
import * as tf from '@tensorflow/tfjs';

/**
 * softmax(q kᵀ · scale + bias) v, with grouped-query attention: query head h reads key/value head
 * ⌊h / (H / KVH)⌋, as HF's `repeat_kv`, computed without copying keys (the query heads of a group
 * are folded into the sequence axis). Vaswani et al. 2017, section 3.2; Ainslie et al. 2023 for GQA.
 * @param q - [B, H, T, D]
 * @param k - [B, KVH, S, D]
 * @param v - [B, KVH, S, D]
 * @param scale - multiplies q·k (usually 1/√D)
 * @param bias - additive, broadcast to [B, H, T, S] (e.g. [B or 1, 1, T, S]), or undefined
 * @param dropout - applied to the probabilities (identity when omitted)
 * @returns [B, H, T, D]
 * @throws Error when H is not a multiple of KVH.
 */
export function attentionReference(
  q: tf.Tensor4D,
  k: tf.Tensor4D,
  v: tf.Tensor4D,
  scale: number,
  bias: tf.Tensor4D | undefined,
  dropout: (p: tf.Tensor) => tf.Tensor = (p) => p,
): tf.Tensor4D {
  return tf.tidy(() => {
    const [B, H, T, D] = q.shape;
    const KVH = k.shape[1];
    const S = k.shape[2];
    if (H % KVH !== 0) throw new Error(`${H} query heads cannot share ${KVH} key/value heads`);
    const nRep = H / KVH;
    const qg = q.reshape([B, KVH, nRep * T, D]); // heads of one group stacked along the sequence
    let scores = tf.mul(tf.matMul(qg, k, false, true), scale).reshape([B, H, T, S]); // [B, H, T, S]
    if (bias) scores = tf.add(scores, bias);
    const probs = dropout(tf.softmax(scores, -1)).reshape([B, KVH, nRep * T, S]);
    return tf.matMul(probs, v).reshape([B, H, T, D]) as tf.Tensor4D; // [B, H, T, D]
  });
}
