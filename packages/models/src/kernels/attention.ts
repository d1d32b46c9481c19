/**
 * The fused attention op `PeftkitAttention` (forward kernel: webgpu/attention.ts; reference: the composed path,
 * reference/attention.ts) and its gradient; and `recomputedAttention`, the composed path as one op for backends
 * without the kernel, which shares the same backward.
 *
 * Forward: one kernel computes dropout(softmax(q kᵀ · scale + bias)) v and, when a gradient will be taken, each
 * row's softmax statistics (maximum m and log of the sum l), so the [B, H, T, S] probabilities are never stored.
 * Dropout is `PeftkitDropout`'s (./dropout.ts, contract in ./reference/philox.ts) over the [B, H, T, S]
 * probabilities: the mask Z = P ∘ M / (1 − rate) with M drawn from (seed0, seed1) and the flat index, recomputed
 * wherever it is needed and never stored.
 * Backward: composed tfjs ops that recompute the probabilities from q, k and the saved statistics,
 * P = exp((q kᵀ · scale + bias − m) − log l), then (FlashAttention's backward, Dao et al. 2022,
 * arXiv:2205.14135, algorithm 2 and its appendix B.2, with its dropout; here unfused):
 *   Z = dropout(P),  dV = Zᵀ dO,  dP = dropout(dO Vᵀ),  dS = P ∘ (dP − rowsum(dO ∘ O)),
 *   dQ = dS K · scale,  dK = dSᵀ Q · scale,
 * where dropout(dO Vᵀ) is the same mask and scale applied to dZ (the chain rule through Z = P ∘ M / (1 − rate)),
 * and rowsum(P ∘ dP) = rowsum(Z ∘ dZ) = rowsum(dO ∘ O) still holds. Without dropout Z = P and dP = dO Vᵀ.
 * The bias is a constant of the op (a mask built from ints): it gets no gradient.
 */
import * as tf from '@tensorflow/tfjs';
import { seededDropout, type PeftkitDropoutAttrs } from './dropout.js';
import { attentionReference } from './reference/attention.js';

/** The kernel's name (registered for `webgpu` only, by ./index.ts). */
export const PEFTKIT_ATTENTION = 'PeftkitAttention';

/** The kernel's attrs. */
export interface PeftkitAttentionAttrs {
  /** Multiplies q·k before the bias is added (usually 1/√D). */
  scale: number;
  /** True: output [B, H, T, D + 2], columns D and D + 1 holding each row's m and log l. */
  stats: boolean;
  /** Dropout probability of the attention probabilities, in [0, 1); 0: no dropout (the seeds are then unused). */
  rate: number;
  /** First Philox key word (uint32) of the dropout mask, as `PeftkitDropout`'s. */
  seed0: number;
  /** Second Philox key word (uint32). */
  seed1: number;
}

/**
 * The dropout of the attention probabilities: `PeftkitDropout`'s attrs (drop probability in [0, 1), uint32 key
 * words), i.e. seededDropout(softmax(scores), rate, seed0, seed1). A layer draws the key from the run's seeded
 * stream (nn/layers.ts `Dropout.draw`).
 */
export type AttentionDropout = PeftkitDropoutAttrs;

/**
 * Whether the current backend has the fused kernel and it takes these operands: float32 q [B, H, T, D], k and
 * v [B, KVH, S, D] with H a multiple of KVH, and a bias (if any) of shape [1 or B, 1, 1 or T, S].
 */
export function fusedAttentionApplies(q: tf.Tensor4D, k: tf.Tensor4D, v: tf.Tensor4D, bias: tf.Tensor4D | undefined): boolean {
  if (!tf.getKernel(PEFTKIT_ATTENTION, tf.getBackend())) return false;
  const [B, H, T, D] = q.shape;
  const [kB, KVH, S, kD] = k.shape;
  if (q.rank !== 4 || k.rank !== 4 || kB !== B || kD !== D || v.shape.join() !== k.shape.join() || H % KVH !== 0) return false;
  if ([q, k, v, bias].some((t) => t && t.dtype !== 'float32')) return false;
  if (!bias) return true;
  const [bb, bh, bt, bs] = bias.shape;
  return bias.rank === 4 && bh === 1 && (bb === 1 || bb === B) && (bt === 1 || bt === T) && bs === S;
}

const runAttention = (q: tf.Tensor, k: tf.Tensor, v: tf.Tensor, bias: tf.Tensor | undefined, attrs: PeftkitAttentionAttrs) =>
  tf.engine().runKernel(PEFTKIT_ATTENTION, (bias ? { q, k, v, bias } : { q, k, v }) as unknown as tf.NamedTensorMap, attrs as unknown as tf.NamedAttrMap) as tf.Tensor4D;

/**
 * dQ, dK, dV of dropout(softmax(q kᵀ · scale + bias)) v from the forward's output o and each row's softmax
 * statistics (see the file comment for the formulas): the one backward of both {@link fusedAttention} and
 * {@link recomputedAttention}. Runs in its own tidy; returns [dq [B, H, T, D], dk [B, KVH, S, D], dv [B, KVH, S, D]].
 * @param dy - [B, H, T, D], the gradient of o
 * @param o - [B, H, T, D], the forward's output
 * @param stats - each row's maximum score m and log Σ exp(score − m), both [B, H, T, 1] (the fused kernel's), from
 *   which P = exp(score − m − log l); or the forward's probabilities P [B, H, T, S] themselves (kept when small, see
 *   {@link KEEP_PROBS_BYTES}); undefined: P = tf.softmax(scores), the composed forward's own kernel (the same
 *   probabilities bit for bit, and on WASM a vectorized kernel where Exp is a scalar loop)
 */
function attentionBackward(
  dy: tf.Tensor4D,
  q: tf.Tensor4D,
  k: tf.Tensor4D,
  v: tf.Tensor4D,
  o: tf.Tensor4D,
  stats: { m: tf.Tensor4D; logL: tf.Tensor4D } | { p: tf.Tensor4D } | undefined,
  scale: number,
  bias: tf.Tensor4D | undefined,
  dropout: AttentionDropout | undefined,
): tf.Tensor[] {
  return tf.tidy(() => {
    const [B, H, T, D] = q.shape;
    const [, KVH, S] = k.shape;
    const rows = (H / KVH) * T; // a group's query heads folded into the sequence axis, as the forward
    const qg = q.reshape([B, KVH, rows, D]);
    const probs = () => {
      if (stats && 'p' in stats) return stats.p;
      let scores = tf.mul(tf.matMul(qg, k, false, true), scale).reshape([B, H, T, S]);
      if (bias) scores = tf.add(scores, bias);
      // (score − m) first: exact for rows whose scores are all near the mask value, where m + log l would round.
      return stats ? tf.exp(tf.sub(tf.sub(scores, stats.m), stats.logL)) : tf.softmax(scores, -1);
    };
    const p = probs().reshape([B, KVH, rows, S]);
    // [B, KVH, rows, S] has the element order of [B, H, T, S], so the flat indices, hence the mask, are the forward's.
    const drop = (x: tf.Tensor) => (dropout ? seededDropout(x, dropout.rate, dropout.seed0, dropout.seed1) : x);
    const dyg = dy.reshape([B, KVH, rows, D]);
    const dv = tf.matMul(drop(p), dyg, true, false); // [B, KVH, S, D]: the group's heads summed, as repeat_kv's gradient
    const dp = drop(tf.matMul(dyg, v, false, true)); // [B, KVH, rows, S]
    const rowDot = tf.sum(tf.mul(dy, o), -1, true).reshape([B, KVH, rows, 1]); // rowsum(dO ∘ O) = rowsum(P ∘ dP)
    const ds = tf.mul(p, tf.sub(dp, rowDot));
    const dq = tf.mul(tf.matMul(ds, k), scale).reshape([B, H, T, D]);
    const dk = tf.mul(tf.matMul(ds, qg, true, false), scale); // [B, KVH, S, D]
    return [dq, dk, dv];
  });
}

/** The kernel's packed [B, H, T, D + 2] output split into o, m and log l (see {@link attentionBackward}). */
function unpackStats(packed: tf.Tensor4D): { o: tf.Tensor4D; m: tf.Tensor4D; logL: tf.Tensor4D } {
  const [B, H, T, D2] = packed.shape;
  const D = D2 - 2;
  return {
    o: tf.slice(packed, [0, 0, 0, 0], [B, H, T, D]),
    m: tf.slice(packed, [0, 0, 0, D], [B, H, T, 1]),
    logL: tf.slice(packed, [0, 0, 0, D + 1], [B, H, T, 1]),
  };
}

/** `dropout` with rate 0 made undefined and the key words taken as uint32, as seededDropout does. */
function normalizeDropout(dropout: AttentionDropout | undefined): AttentionDropout | undefined {
  if (dropout && !(dropout.rate >= 0 && dropout.rate < 1)) throw new RangeError(`attention dropout rate must be in [0, 1), got ${dropout.rate}`);
  return dropout && dropout.rate > 0 ? { rate: dropout.rate, seed0: dropout.seed0 >>> 0, seed1: dropout.seed1 >>> 0 } : undefined;
}

/**
 * dropout(softmax(q kᵀ · scale + bias)) v through `PeftkitAttention`. When the tape is recording, the kernel also
 * returns the row statistics and the gradient (q, k, v; not the bias) is {@link attentionBackward}'s, which
 * recomputes the probabilities and the dropout mask; otherwise only the output is computed.
 * @param q - [B, H, T, D] float32
 * @param k - [B, KVH, S, D] float32, H a multiple of KVH (query head h reads head ⌊h / (H / KVH)⌋)
 * @param v - [B, KVH, S, D] float32
 * @param scale - multiplies q·k (usually 1/√D)
 * @param bias - additive [1 or B, 1, 1 or T, S] (0 visible, large negative masked), or undefined
 * @param dropout - dropout of the [B, H, T, S] probabilities with `PeftkitDropout`'s mask (the same numbers as
 *   seededDropout(softmax(scores), rate, seed0, seed1) in the composed path), or undefined (also when rate is 0)
 * @returns [B, H, T, D]
 * @throws Error when the backend has no `PeftkitAttention` kernel or the shapes do not fit (check
 *   {@link fusedAttentionApplies} first); RangeError when the dropout rate is outside [0, 1).
 */
export function fusedAttention(q: tf.Tensor4D, k: tf.Tensor4D, v: tf.Tensor4D, scale: number, bias: tf.Tensor4D | undefined, dropout?: AttentionDropout): tf.Tensor4D {
  const drop = normalizeDropout(dropout);
  const dropAttrs = drop ?? { rate: 0, seed0: 0, seed1: 0 };
  if (!tf.engine().isTapeOn()) return runAttention(q, k, v, bias, { scale, stats: false, ...dropAttrs });
  const [B, H, T, D] = q.shape;
  const f = tf.customGrad(((qq: tf.Tensor4D, kk: tf.Tensor4D, vv: tf.Tensor4D, save: tf.GradSaveFunc) => {
    const packed = runAttention(qq, kk, vv, bias, { scale, stats: true, ...dropAttrs });
    // The bias too: it is not an input of the op, and the caller's tidy may dispose it before the backward pass.
    save(bias ? [qq, kk, vv, packed, bias] : [qq, kk, vv, packed]);
    return {
      value: tf.slice(packed, [0, 0, 0, 0], [B, H, T, D]),
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
        const [sq, sk, sv, sp, sb] = saved as tf.Tensor4D[];
        return tf.tidy(() => {
          const { o, m, logL } = unpackStats(sp);
          return attentionBackward(dy as tf.Tensor4D, sq, sk, sv, o, { m, logL }, scale, sb, drop);
        });
      },
    };
    // tfjs types the callback as variadic over tensors and the save function.
  }) as unknown as Parameters<typeof tf.customGrad>[0]) as (q: tf.Tensor4D, k: tf.Tensor4D, v: tf.Tensor4D) => tf.Tensor4D;
  return f(q, k, v);
}

/**
 * The largest [B, H, T, S] softmax (bytes) {@link recomputedAttention} keeps for its backward pass instead of
 * recomputing it. 8 MiB holds one layer of GPT-2 small at 4 x 256 tokens or the main job's 16 x 128 (4 heads); a
 * layer at 8 x 512 (12 heads) is 96 MiB and is recomputed. Keeping saved GPT-2 small's LoRA step (1 x 128) one
 * q kᵀ product, a scale, a mask and a softmax per layer; the SmolLM shape's, 30 layers of them (docs/benchmarks.md).
 */
export const KEEP_PROBS_BYTES = 8 * 2 ** 20;

/**
 * dropout(softmax(q kᵀ · scale + bias)) v composed of tfjs ops (reference/attention.ts `attentionReference`, so the
 * same values bit for bit) as one custom-gradient op for backends without the fused kernel (WASM, cpu), in the
 * spirit of FlashAttention: the forward runs in the op's own tidy, so the [B, H, T, S] scores, probabilities and
 * dropped probabilities die at once (tfjs would otherwise keep them until the gradient is computed), and it saves
 * only q, k, v, the bias and the output [B, H, T, D]. The backward is {@link attentionBackward}, which recomputes
 * the scores and probabilities (with tf.softmax, as the forward) and the dropout mask (the same Philox key, so the
 * same mask): one more q kᵀ product per step. Where the probabilities are small (at most {@link KEEP_PROBS_BYTES}),
 * it keeps them instead and the backward skips that product and softmax. Call it only while a gradient is being
 * recorded; otherwise the reference alone is the same work.
 * Shapes and parameters as {@link fusedAttention} (GQA: H a multiple of KVH; S ≥ T with a cache or prefix); the
 * bias gets no gradient.
 * @param keepProbsBytes - keep the [B, H, T, S] softmax up to this size in bytes (tests pass 0 to force recomputing)
 * @returns [B, H, T, D]
 * @throws Error when H is not a multiple of KVH; RangeError when the dropout rate is outside [0, 1).
 */
export function recomputedAttention(q: tf.Tensor4D, k: tf.Tensor4D, v: tf.Tensor4D, scale: number, bias: tf.Tensor4D | undefined, dropout?: AttentionDropout, keepProbsBytes = KEEP_PROBS_BYTES): tf.Tensor4D {
  const drop = normalizeDropout(dropout);
  const keepProbs = q.shape[0] * q.shape[1] * q.shape[2] * k.shape[2] * 4 <= keepProbsBytes;
  const f = tf.customGrad(((qq: tf.Tensor4D, kk: tf.Tensor4D, vv: tf.Tensor4D, save: tf.GradSaveFunc) => {
    let kept: tf.Tensor4D | undefined;
    const o = attentionReference(qq, kk, vv, scale, bias, (p) => {
      if (keepProbs) kept = tf.keep(p) as tf.Tensor4D; // the softmax, before dropout: the mask is drawn again from its key
      return drop ? seededDropout(p, drop.rate, drop.seed0, drop.seed1) : p;
    });
    // The bias too: it is not an input of the op, and the caller's tidy may dispose it before the backward pass.
    save([qq, kk, vv, o, ...(kept ? [kept] : []), ...(bias ? [bias] : [])]);
    kept?.dispose(); // save() holds its own reference
    return {
      value: o,
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
        const [sq, sk, sv, so, ...rest] = saved as tf.Tensor4D[];
        const sp = keepProbs ? rest.shift() : undefined;
        return attentionBackward(dy as tf.Tensor4D, sq!, sk!, sv!, so!, sp && { p: sp }, scale, rest[0], drop);
      },
    };
    // tfjs types the callback as variadic over tensors and the save function.
  }) as unknown as Parameters<typeof tf.customGrad>[0]) as (q: tf.Tensor4D, k: tf.Tensor4D, v: tf.Tensor4D) => tf.Tensor4D;
  return f(q, k, v);
}
