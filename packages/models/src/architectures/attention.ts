/**
 * The attention arithmetic shared by every architecture: head splitting, the additive mask that
 * combines causality, padding and a sliding window, and scaled dot-product attention with
 * grouped-query heads (Vaswani et al. 2017, section 3.2; Ainslie et al. 2023 for GQA).
 */
import * as tf from '@tensorflow/tfjs';
import { fusedAttention, fusedAttentionApplies, recomputedAttention, type AttentionDropout } from '../kernels/attention.js';
import { seededDropout } from '../kernels/dropout.js';
import { attentionReference } from '../kernels/reference/attention.js';
import { reshapeUnsaved } from '../nn/layers.js';

/**
 * Added to the scores of positions that may not be attended to. Large enough that `exp` underflows
 * to exactly 0 after softmax, small enough that adding it twice stays finite (HF uses the dtype's
 * minimum; rows with at least one visible key give the same probabilities).
 */
export const MASKED = -1e9;

/** [B, T, H * D] → [B, H, T, D]. */
export function splitHeads(x: tf.Tensor, numHeads: number, headDim: number): tf.Tensor4D {
  const [B, T] = x.shape;
  return reshapeUnsaved(x, [B!, T!, numHeads, headDim]).transpose([0, 2, 1, 3]) as tf.Tensor4D; // see mergeHeads
}

/** [B, H, T, D] → [B, T, H * D]. */
export function mergeHeads(x: tf.Tensor): tf.Tensor3D {
  const [B, H, T, D] = x.shape;
  // Transpose keeps nothing for its gradient; tfjs's Reshape would keep the transposed copy (nn/layers.ts reshapeUnsaved).
  return reshapeUnsaved(x.transpose([0, 2, 1, 3]), [B!, T!, H! * D!]) as tf.Tensor3D;
}

/** What decides which key positions each query position sees. */
export interface MaskSpec {
  /** Query positions T (the current ones). */
  queryLength: number;
  /** Cached or prefix positions P in front of them; keys are S = P + T. */
  pastLength: number;
  /** [B, P + T], 1 = may be attended to. */
  attentionMask?: tf.Tensor2D;
  /** Decoder: query i (absolute position P + i) sees keys j ≤ P + i. */
  causal: boolean;
  /** Mistral-style: query i also sees only keys j > P + i - window. */
  slidingWindow?: number | null;
}

/**
 * The additive attention bias [B or 1, 1, T, S]: 0 where a key is visible, {@link MASKED} where it
 * is not. Undefined when every key is visible (no mask to add).
 * @throws Error when the attention mask does not cover past + current positions.
 */
export function attentionBias(spec: MaskSpec): tf.Tensor4D | undefined {
  const T = spec.queryLength;
  const S = spec.pastLength + T;
  if (spec.attentionMask && spec.attentionMask.shape[1] !== S) {
    throw new Error(`attentionMask has ${spec.attentionMask.shape[1]} columns but past + current positions are ${spec.pastLength} + ${T} = ${S}; it must cover both`);
  }
  const window = spec.slidingWindow ?? 0;
  const needStructure = (spec.causal && T > 1) || (window > 0 && S > window);
  if (!needStructure && !spec.attentionMask) return undefined;
  return tf.tidy(() => {
    let visible: tf.Tensor | undefined;
    if (needStructure) {
      const m = new Float32Array(T * S);
      for (let i = 0; i < T; i++) {
        const q = spec.pastLength + i;
        for (let j = 0; j < S; j++) {
          const ok = (!spec.causal || j <= q) && (window <= 0 || j > q - window);
          m[i * S + j] = ok ? 1 : 0;
        }
      }
      visible = tf.tensor4d(m, [1, 1, T, S]);
    }
    if (spec.attentionMask) {
      const pad = spec.attentionMask.cast('float32').reshape([-1, 1, 1, S]); // [B, 1, 1, S]
      visible = visible ? tf.mul(visible, pad) : pad;
    }
    return tf.mul(tf.sub(1, visible!), MASKED) as tf.Tensor4D;
  });
}

/**
 * softmax(q kᵀ · scale + bias) v, with grouped-query attention: query head h reads key/value head
 * ⌊h / (H / KVH)⌋, as HF's `repeat_kv`, computed without copying keys.
 *
 * On a backend that has the fused kernel (WebGPU: kernels/webgpu/attention.ts), one kernel computes it (online
 * softmax, FlashAttention), dropout included, and the gradient recomputes the probabilities and the dropout mask
 * from the saved row statistics and the seeds; everywhere else the composed tfjs ops of
 * kernels/reference/attention.ts run with `seededDropout` on the probabilities, which the fused kernel is tested
 * against; while a gradient is recorded, as one op that keeps only q, k, v, the output and the row statistics and
 * recomputes the probabilities in the backward pass, with the fused kernel's backward (kernels/attention.ts
 * `recomputedAttention`). Both apply the same mask (Philox4x32-10 keyed by the seeds and the flat [B, H, T, S] index).
 * @param q - [B, H, T, D]
 * @param k - [B, KVH, S, D]
 * @param v - [B, KVH, S, D]
 * @param bias - [B or 1, 1, T or 1, S] from {@link attentionBias}, or undefined
 * @param dropout - dropout of the probabilities (rate and the Philox key drawn from the run's stream, e.g. by
 *   `Dropout.draw()` of nn/layers.ts), or undefined when no dropout is active (evaluation, or rate 0)
 * @returns [B, H, T, D]
 * @throws Error when H is not a multiple of KVH; RangeError when the dropout rate is outside [0, 1).
 */
export function scaledDotProductAttention(
  q: tf.Tensor4D,
  k: tf.Tensor4D,
  v: tf.Tensor4D,
  scale: number,
  bias: tf.Tensor4D | undefined,
  dropout?: AttentionDropout,
): tf.Tensor4D {
  if (fusedAttentionApplies(q, k, v, bias)) return fusedAttention(q, k, v, scale, bias, dropout);
  if (tf.engine().isTapeOn()) return recomputedAttention(q, k, v, scale, bias, dropout);
  return attentionReference(q, k, v, scale, bias, dropout && ((p) => seededDropout(p, dropout.rate, dropout.seed0, dropout.seed1)));
}

/** HF's default position ids: `past .. past + T - 1`, [1, T] int32 (broadcast over the batch). */
export function defaultPositionIds(pastLength: number, T: number): tf.Tensor2D {
  return tf.range(pastLength, pastLength + T, 1, 'int32').reshape([1, T]) as tf.Tensor2D;
}

/** Appends the current keys/values to the cache along the sequence axis: [B, KVH, P, D] + [B, KVH, T, D]. */
export function appendKV(past: { key: tf.Tensor4D; value: tf.Tensor4D } | undefined, key: tf.Tensor4D, value: tf.Tensor4D): { key: tf.Tensor4D; value: tf.Tensor4D } {
  if (!past) return { key, value };
  const [, KVH, , D] = key.shape;
  if (past.key.shape[1] !== KVH || past.key.shape[3] !== D || past.value.shape[1] !== KVH || past.value.shape[3] !== D) {
    throw new Error(`pastKeyValues must be [batch, ${KVH} key/value heads, past, ${D} head_dim]; got key [${past.key.shape.join(', ')}], value [${past.value.shape.join(', ')}]`);
  }
  if (past.key.shape[0] !== key.shape[0] && past.key.shape[0] !== 1) {
    throw new Error(`pastKeyValues has batch ${past.key.shape[0]} but the inputs have batch ${key.shape[0]}`);
  }
  // A prefix given for one row is shared by the whole batch.
  const pk = past.key.shape[0] === key.shape[0] ? past.key : tf.broadcastTo(past.key, [key.shape[0], ...past.key.shape.slice(1)] as [number, number, number, number]);
  const pv = past.value.shape[0] === value.shape[0] ? past.value : tf.broadcastTo(past.value, [value.shape[0], ...past.value.shape.slice(1)] as [number, number, number, number]);
  return { key: tf.concat([pk, key], 2) as tf.Tensor4D, value: tf.concat([pv, value], 2) as tf.Tensor4D };
}
