/**
 * The LM head and the token cross-entropy as one op that never keeps [tokens, vocab] tensors:
 * `Σ_rows −log softmax(h Wᵀ)[target]`, computed and differentiated a chunk of rows at a time (the
 * chunked form of Liger Kernel's fused linear cross-entropy, Hsu et al. 2024, "Liger Kernel:
 * Efficient Triton Kernels for LLM Training", section 3.3). Backend-neutral: plain tfjs ops, so it
 * runs on every backend, with the softmax and its gradient as peftkit's kernels where the backend has them (WASM;
 * kernels/softmax-xent.ts); its reference is the composed path (logits = h Wᵀ, then log-softmax and
 * the one-hot pick, `causalLmNllSum` / `classificationNllSum` in @peftkit/steps' losses.ts), which
 * its tests compare it with.
 *
 * Forward: per chunk, logits = h_c · Wᵀ (W read in place by peftkit's GEMM on WASM; elsewhere one plain 2-D
 * product against Wᵀ materialized once per pass, see `matMulLast`), their softmax, the rows'
 * logsumexp from it and the target logits; it keeps only hidden and the targets. Backward: per
 * chunk, the logits and softmax again, dLogits = (softmax − onehot) · dy on non-ignored rows, dHidden = dLogits · W and,
 * when W gets a gradient, dW += dLogitsᵀ · h_c. Peak extra memory is a few [chunkRows, vocab]
 * tensors and, off peftkit's GEMM, one [hidden, vocab] transpose of W (cached once for a frozen W), instead of several
 * [N, vocab] tensors kept from the forward pass to the backward pass. When all N rows fit one chunk
 * (at most 32 MiB of logits: the main job's 16 x 128 tokens at vocabulary 4,096), the softmax is
 * kept instead of recomputed, which saves a product and a softmax pass at no memory that matters.
 */
import * as tf from '@tensorflow/tfjs';
import { matMul2d, matMulTransposed, productsTakeTransposes } from './matmul.js';
import { transposeForProduct } from '../nn/layers.js';
import { hasSoftmaxXentKernels, softmaxXentGradKernel, softmaxXentKernel } from './softmax-xent.js';

/** PyTorch's `CrossEntropyLoss` default `ignore_index` (HF's -100 labels; `IGNORE_INDEX` in @peftkit/data). */
const IGNORE_INDEX = -100;

/** Logits elements per chunk by default: 2^23 floats (32 MiB), about 167 rows of GPT-2's 50,257-token vocabulary. */
const CHUNK_ELEMENTS = 2 ** 23;

/** Options of {@link lmHeadCrossEntropy}. */
export interface LmHeadCrossEntropyOptions {
  /** Rows whose logits exist at once ([chunkRows, vocab] float32). Default: {@link defaultChunkRows}. */
  chunkRows?: number;
}

/** The default chunk: as many rows as fit 2^23 logits (32 MiB), at least one. */
export function defaultChunkRows(vocab: number): number {
  return Math.max(1, Math.floor(CHUNK_ELEMENTS / vocab));
}

/** Rows [start, start + rows) of each chunk of n rows. */
function chunks(n: number, rows: number): [number, number][] {
  const out: [number, number][] = [];
  for (let s = 0; s < n; s += rows) out.push([s, Math.min(rows, n - s)]);
  return out;
}

/** A chunk's targets: the mask of non-ignored rows [r] (float32) and the targets with ignored ones set to 0 [r]. */
function chunkTargets(targets: tf.Tensor1D, start: number, r: number): { mask: tf.Tensor1D; safe: tf.Tensor1D } {
  const t = tf.slice(targets, [start], [r]);
  const keep = tf.notEqual(t, IGNORE_INDEX);
  return { mask: tf.cast(keep, 'float32') as tf.Tensor1D, safe: tf.where(keep, t, tf.zerosLike(t)) as tf.Tensor1D };
}

/**
 * Each row's logsumexp from its logits and their softmax, without an exp pass of our own:
 * softmax at the row's largest logit is p_max = exp(x_max − lse), so lse = x_max − log p_max, and
 * p_max ≥ 1/V keeps the log finite and exact to float32 rounding. Why not max, exp, sum, log: on
 * WASM, `tf.softmax` is XNNPACK's vectorized kernel (12 ms over [2032, 4096]) where `tf.exp` is a
 * scalar loop (78 ms); the softmax is needed for the gradient anyway.
 * @param logits - [r, V]
 * @param probs - [r, V] = softmax(logits) over the last axis
 * @returns [r]: log Σ_j exp(logits_ij), in nats
 */
function logSumExpFromSoftmax(logits: tf.Tensor2D, probs: tf.Tensor): tf.Tensor1D {
  return tf.sub(tf.max(logits, 1), tf.log(tf.max(probs, 1))) as tf.Tensor1D;
}

/**
 * The summed negative log-likelihood of `targets` under logits = hidden · weightᵀ, without keeping
 * the logits: the LM head (tied `wte` / `embed_tokens`, or an untied bias-free `lm_head` [V, C])
 * fused with the cross-entropy.
 *
 * Gradients: to `hidden` always; to `weight` unless it is a frozen variable (`trainable` false: a
 * LoRA run's base), where the dW products (as costly as the forward product) are skipped, as
 * `matMulLast` does. `targets` gets none.
 *
 * @param hidden - [N, C] float32: final hidden states, one row per scored position.
 * @param weight - [V, C] float32: the head's weight in PyTorch's Linear layout (an embedding table when tied).
 * @param targets - [N] int32: the target token id of each row, in [0, V), or -100 to ignore the row.
 *   Other values are not checked (the op would need to read the targets back from the device).
 * @param opts - `chunkRows`: rows per chunk (default {@link defaultChunkRows}).
 * @returns a scalar: Σ over rows with target ≠ -100 of logsumexp(logits_row) − logits_row[target], in nats.
 * @throws Error when the shapes do not match or targets are not int32; RangeError for a chunkRows that is not a positive integer.
 */
export function lmHeadCrossEntropy(hidden: tf.Tensor2D, weight: tf.Tensor2D, targets: tf.Tensor1D, opts: LmHeadCrossEntropyOptions = {}): tf.Scalar {
  if (hidden.rank !== 2 || weight.rank !== 2 || targets.rank !== 1 || hidden.shape[1] !== weight.shape[1] || targets.shape[0] !== hidden.shape[0] || targets.dtype !== 'int32') {
    throw new Error(`lmHeadCrossEntropy: hidden [N, C], weight [V, C] and int32 targets [N] expected, got hidden [${hidden.shape}], weight [${weight.shape}], targets [${targets.shape}] ${targets.dtype}`);
  }
  const [N] = hidden.shape;
  const V = weight.shape[0];
  const rows = opts.chunkRows ?? defaultChunkRows(V);
  if (!Number.isInteger(rows) || rows < 1) throw new RangeError(`lmHeadCrossEntropy: chunkRows must be a positive integer, got ${rows}`);
  const parts = chunks(N, rows);

  // All rows in one chunk of at most CHUNK_ELEMENTS logits: keep the softmax for the backward pass.
  const keepProbs = parts.length === 1 && N * V <= CHUNK_ELEMENTS;

  // On WASM with peftkit's GEMM the logits read W [V, C] in place; elsewhere they multiply by Wᵀ [C, V], made once
  // per pass (cached for a frozen W: transposeForProduct).
  const inPlace = productsTakeTransposes();
  const transposedW = (w: tf.Tensor2D) => (inPlace ? undefined : transposeForProduct(w));
  const logitsOf = (hc: tf.Tensor2D, w: tf.Tensor2D, wT: tf.Tensor2D | undefined) => (wT ? matMul2d(hc, wT) : matMulTransposed(hc, w, false, true)); // [r, V]

  // The softmax and each row's nll as one kernel each way where the backend has them (WASM; kernels/softmax-xent.ts).
  const fused = hasSoftmaxXentKernels();

  // Σ (lse − target logit) over the chunk's kept rows and, with keepProbs, the softmax [r, V].
  const forwardChunk = (h: tf.Tensor2D, w: tf.Tensor2D, wT: tf.Tensor2D | undefined, start: number, r: number): [tf.Scalar, tf.Tensor2D?] =>
    tf.tidy(() => {
      const logits = logitsOf(tf.slice(h, [start, 0], [r, -1]) as tf.Tensor2D, w, wT); // [r, V]
      if (fused) {
        const { mask, safe } = chunkTargets(targets, start, r);
        const { probs, nll } = softmaxXentKernel(logits, safe);
        const loss = tf.sum(tf.mul(nll, mask)) as tf.Scalar;
        return keepProbs ? [loss, probs] : [loss];
      }
      const p = tf.softmax(logits); // [r, V]
      const lse = logSumExpFromSoftmax(logits, p);
      const { mask, safe } = chunkTargets(targets, start, r);
      // The target logit by a gather over the flat chunk (row·V + target): no [r, V] one-hot in the forward pass.
      const picked = tf.gather(tf.reshape(logits, [-1]), tf.add(tf.mul(tf.range(0, r, 1, 'int32'), tf.scalar(V, 'int32')), safe)); // [r]
      const loss = tf.sum(tf.mul(tf.sub(lse, picked), mask)) as tf.Scalar;
      return keepProbs ? [loss, p as tf.Tensor2D] : [loss];
    }) as [tf.Scalar, tf.Tensor2D?];

  // Keeps hidden, the targets, with keepProbs the softmax [N, V], and, when W gets a gradient, W (clones share the data).
  const forward = (h: tf.Tensor2D, w: tf.Tensor2D, save: tf.GradSaveFunc, saveW: boolean): tf.Scalar => {
    const wT = transposedW(w); // [C, V]; an owned one is freed here
    const sums: tf.Scalar[] = [];
    let probs: tf.Tensor2D | undefined;
    for (const [start, r] of parts) {
      const [s, p] = forwardChunk(h, w, wT?.t, start, r);
      sums.push(s);
      probs = p;
    }
    if (wT?.owned) wT.t.dispose();
    // The targets too: the caller may dispose them (a tidy) before the backward pass runs.
    save([h, targets, ...(saveW ? [w] : []), ...(probs ? [probs] : [])]);
    return tf.addN(sums) as tf.Scalar;
  };

  // dHidden [N, C] and, with `withWeight`, dW [V, C] for upstream gradient dy (a scalar).
  const backward = (dy: tf.Tensor, h: tf.Tensor2D, y: tf.Tensor1D, w: tf.Tensor2D, withWeight: boolean, probs?: tf.Tensor2D): tf.Tensor[] => {
    const wT = probs ? undefined : transposedW(w);
    const dHs: tf.Tensor2D[] = [];
    let dW: tf.Tensor2D | undefined;
    try {
      for (const [start, r] of parts) {
        const [dh, dw] = tf.tidy(() => {
          const hc = tf.slice(h, [start, 0], [r, -1]) as tf.Tensor2D;
          const { mask, safe } = chunkTargets(y, start, r);
          // softmax [r, V]: kept, or recomputed from the logits.
          const logitsAgain = () => logitsOf(hc, w, wT?.t);
          const p = probs ?? (fused ? softmaxXentKernel(logitsAgain(), safe).probs : tf.softmax(logitsAgain()));
          const rowScale = tf.mul(mask, dy) as tf.Tensor1D; // [r]: dy on kept rows, 0 on ignored ones
          // int32 one-hot, upcast by sub: tfjs 4.22's WASM OneHot ignores dtype 'float32' (writes int32 bits, ~1e-45).
          const g = fused ? softmaxXentGradKernel(p as tf.Tensor2D, safe, rowScale) : (tf.mul(tf.sub(p, tf.oneHot(safe, V)), tf.expandDims(rowScale, 1)) as tf.Tensor2D); // dLogits [r, V]
          const dhc = matMul2d(g, w); // [r, C] = [r, V] · [V, C]
          // dW = gᵀ·h_c, g read in place by peftkit's GEMM on WASM. Where it is materialised (matMulTransposed), g is
          // transposed rather than computing (h_cᵀ·g)ᵀ, although that transposes fewer elements: XNNPACK packs a
          // product's right operand, and packing g [r, V] cost more than transposing it (main job, one thread: 114 ms
          // against 146 for [2032, 4096]).
          return withWeight ? [dhc, matMulTransposed(g, hc, true, false)] : [dhc];
        }) as tf.Tensor2D[];
        dHs.push(dh);
        if (dw) {
          const prev = dW;
          dW = prev ? (tf.add(prev, dw) as tf.Tensor2D) : dw;
          if (prev) tf.dispose([prev, dw]);
        }
      }
      const dH = tf.concat(dHs);
      return withWeight ? [dH, dW!] : [dH];
    } finally {
      if (wT?.owned) wT.t.dispose();
      tf.dispose(dHs);
    }
  };

  const frozen = weight instanceof tf.Variable && !weight.trainable;
  // tfjs types customGrad's callback as variadic over tensors and the save function.
  type Grad = Parameters<typeof tf.customGrad>[0];
  if (frozen) {
    const f = tf.customGrad(((h: tf.Tensor2D, save: tf.GradSaveFunc) => ({
      value: forward(h, weight, save, false),
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => backward(dy, saved[0] as tf.Tensor2D, saved[1] as tf.Tensor1D, weight, false, saved[2] as tf.Tensor2D | undefined),
    })) as unknown as Grad);
    return f(hidden) as tf.Scalar;
  }
  const f = tf.customGrad(((h: tf.Tensor2D, w: tf.Tensor2D, save: tf.GradSaveFunc) => ({
    value: forward(h, w, save, true),
    gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => backward(dy, saved[0] as tf.Tensor2D, saved[1] as tf.Tensor1D, saved[2] as tf.Tensor2D, true, saved[3] as tf.Tensor2D | undefined),
  })) as unknown as Grad);
  return f(hidden, weight) as tf.Scalar;
}
