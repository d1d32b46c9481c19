import * as tf from '@tensorflow/tfjs';
import { Module } from './module.js';
import { UserError } from '@peftkit/core';
import { nextSeed, nextSeedPair } from './rng.js';
import { seededDropout, type PeftkitDropoutAttrs } from '../kernels/dropout.js';
import { matMul2d } from '../kernels/matmul.js';

/**
 * `y = x Wᵀ + b` with PyTorch's layout: weight [out_features, in_features], bias [out_features].
 * Default init as `torch.nn.Linear`: U(-1/√in, 1/√in) for weight and bias.
 * Shapes: x [..., in] → y [..., out].
 */
export class Linear extends Module {
  weight: tf.Variable;
  bias?: tf.Variable;
  constructor(readonly inFeatures: number, readonly outFeatures: number, bias = true) {
    super();
    const k = 1 / Math.sqrt(inFeatures);
    this.weight = this.registerParameter('weight', tf.randomUniform([outFeatures, inFeatures], -k, k, 'float32', nextSeed()));
    if (bias) this.bias = this.registerParameter('bias', tf.randomUniform([outFeatures], -k, k, 'float32', nextSeed()));
  }
  forward(x: tf.Tensor): tf.Tensor {
    return tf.tidy(() => {
      const y = matMulLast(x, this.weight, true);
      return this.bias ? tf.add(y, this.bias) : y;
    });
  }
}

/**
 * GPT-2's Conv1D (a linear layer with the weight stored transposed): weight [in, out] (`nf` = out),
 * `y = x W + b`. HF init: weight N(0, 0.02), bias zeros. Shapes: x [..., in] → y [..., out].
 */
export class Conv1D extends Module {
  weight: tf.Variable;
  bias: tf.Variable;
  constructor(readonly inFeatures: number, readonly outFeatures: number) {
    super();
    this.weight = this.registerParameter('weight', tf.randomNormal([inFeatures, outFeatures], 0, 0.02, 'float32', nextSeed()));
    this.bias = this.registerParameter('bias', tf.zeros([outFeatures]));
  }
  forward(x: tf.Tensor): tf.Tensor {
    return tf.tidy(() => tf.add(matMulLast(x, this.weight, false), this.bias));
  }
}

/**
 * `x` [..., in] times `w` over the last axis: w is [out, in] when `transposeW`, else [in, out].
 * Result [..., out].
 *
 * Leading axes are folded so that every product is a plain 2-D matMul without transpose flags:
 * on the WASM backend only that form reaches XNNPACK's fast path, and a transposed operand ran
 * 10 to 30 times slower (docs/benchmarks.md). The gradient is written out for the same reason:
 * tfjs's own matMul gradient uses the transposed forms. The plain products go through `matMul2d`
 * (kernels/matmul.ts): peftkit's tiled kernel on WebGPU, tfjs's matMul elsewhere.
 */
export function matMulLast(x: tf.Tensor, w: tf.Tensor, transposeW: boolean): tf.Tensor {
  const lead = x.shape.slice(0, -1);
  const inF = x.shape[x.shape.length - 1];
  const out = transposeW ? w.shape[0] : w.shape[1];
  const x2 = x.reshape([-1, inF]) as tf.Tensor2D;
  const frozen = w instanceof tf.Variable && !w.trainable;
  const y = frozen ? frozenProduct(x2, w as tf.Variable & tf.Tensor2D, transposeW) : (transposeW ? matMulNT : matMulNN)(x2, w as tf.Tensor2D);
  return y.reshape([...lead, out] as number[]);
}

/**
 * Transposed copies of frozen weights, made once and reused while the weight keeps its data (tfjs's
 * `Variable.assign` swaps the data id, so a merge, unmerge or load invalidates the copy). Without
 * them every training step transposed every frozen weight again: all of a Llama's Linear layers in
 * the forward pass, all of GPT-2's Conv1D layers in the backward pass (on WASM about 10 ns an
 * element: 1.3 s a step for a 135M-parameter model), and generation multiplied by Wᵀ through
 * tfjs's slow transposed product at every token. Costs the weights' memory once more.
 */
const frozenTransposes = new Map<tf.Variable, { dataId: tf.DataId; t: tf.Tensor2D }>();

/** Wᵀ of a frozen weight, cached (see {@link frozenTransposes}); the cache owns the tensor: never dispose it. */
function frozenTranspose(w: tf.Variable): tf.Tensor2D {
  const hit = frozenTransposes.get(w);
  if (hit && hit.dataId === w.dataId && !hit.t.isDisposed) return hit.t;
  for (const [v, e] of frozenTransposes) {
    if (v.isDisposed || v === w || e.dataId !== v.dataId) {
      e.t.dispose();
      frozenTransposes.delete(v);
    }
  }
  const t = tf.keep(tf.transpose(w) as tf.Tensor2D);
  frozenTransposes.set(w, { dataId: w.dataId, t });
  return t;
}

/**
 * Wᵀ for a plain product: the cached copy when W is a frozen variable (see {@link frozenTransposes};
 * `owned` false: never dispose it), else a new transpose the caller owns.
 */
export function transposeForProduct(w: tf.Tensor2D): { t: tf.Tensor2D; owned: boolean } {
  if (w instanceof tf.Variable && !w.trainable) return { t: frozenTranspose(w as tf.Variable & tf.Tensor2D), owned: false };
  return { t: tf.transpose(w) as tf.Tensor2D, owned: true };
}

/** Frees every cached transposed weight (tests that count tensors, or a caller about to load another model). */
export function clearFrozenTransposes(): void {
  for (const e of frozenTransposes.values()) e.t.dispose();
  frozenTransposes.clear();
}

/** Up to this many rows (a decoding step) m·Wᵀ always uses the cached Wᵀ: a GEMM with one output column wastes XNNPACK's vector lanes. */
const FEW_ROWS = 16;

/**
 * m·Wᵀ for a frozen W [p, q] and m [rows, q], as plain products, by whichever costs less: the cached
 * Wᵀ (one transpose, but the weight's memory again, twice counting XNNPACK's packed copy), or
 * (W·mᵀ)ᵀ (two transposes of activations per call, no copy of W). The cache is taken when W is no
 * bigger than the activations transposed instead (p·q ≤ rows·(p + q): small models, long batches)
 * and for a decoding step's few rows; a 1 x 128 LoRA step of GPT-2 small takes the other form and
 * keeps no copy of its frozen weights.
 */
function timesTransposed(m: tf.Tensor2D, w: tf.Variable & tf.Tensor2D): tf.Tensor2D {
  const rows = m.shape[0];
  const [p, q] = w.shape as [number, number];
  if (rows <= FEW_ROWS || p * q <= rows * (p + q)) return matMul2d(m, frozenTranspose(w));
  return tf.tidy(() => tf.transpose(matMul2d(w, tf.transpose(m) as tf.Tensor2D)) as tf.Tensor2D);
}

/** x·W or x·Wᵀ where W is frozen: only x gets a gradient, so W's (as costly as the forward product) is never computed. */
function frozenProduct(x: tf.Tensor2D, w: tf.Variable & tf.Tensor2D, transposeW: boolean): tf.Tensor2D {
  const f = tf.customGrad(((xx: tf.Tensor, save: tf.GradSaveFunc) => {
    save([xx]);
    const value = transposeW ? timesTransposed(xx as tf.Tensor2D, w) : matMul2d(xx as tf.Tensor2D, w);
    return {
      value,
      // dx = dy·W (W [out, in]) or dy·Wᵀ (W [in, out]), as plain products.
      gradFunc: (dy: tf.Tensor) => [tf.tidy(() => (transposeW ? matMul2d(dy as tf.Tensor2D, w) : timesTransposed(dy as tf.Tensor2D, w)))],
    };
  }) as unknown as Parameters<typeof tf.customGrad>[0]) as (x: tf.Tensor2D) => tf.Tensor2D;
  return f(x);
}

/**
 * aᵀ·b for a [N, p] and b [N, q] (result [p, q]) as plain products, transposing whichever costs
 * fewer elements: a (N·p), or b and the result, as (bᵀ·a)ᵀ (N·q + p·q).
 * The weight gradient of y = x·Wᵀ is `weightGradNT(dy, x)` = dyᵀ·x ([out, in]): for a tied LM head
 * (out = vocabulary) the second form is 10 to 30 times fewer elements. That of y = x·W is
 * `weightGradNT(x, dy)` = xᵀ·dy ([in, out]): for GPT-2's MLP c_proj (in = 4·out) the second form
 * transposes dy [N, out] and the small result instead of x [N, 4·out].
 */
export function weightGradNT(a: tf.Tensor2D, b: tf.Tensor2D): tf.Tensor2D {
  const [N, p] = a.shape;
  const q = b.shape[1];
  if (N * p <= N * q + p * q) return matMul2d(tf.transpose(a) as tf.Tensor2D, b);
  return tf.transpose(matMul2d(tf.transpose(b) as tf.Tensor2D, a)) as tf.Tensor2D;
}

// y = x·wᵀ with w [out, in]; dx = dy·w, dw = dyᵀ·x, all as plain products.
const matMulNT = tf.customGrad(((x: tf.Tensor, w: tf.Tensor, save: tf.GradSaveFunc) => {
  save([x, w]);
  return {
    value: matMul2d(x as tf.Tensor2D, tf.transpose(w) as tf.Tensor2D),
    gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
      const [sx, sw] = saved as tf.Tensor2D[];
      // In a tidy: tfjs runs a custom gradient outside any per-node scope, so the transposed copies
      // would otherwise live until the whole backward pass ends.
      return tf.tidy(() => [matMul2d(dy as tf.Tensor2D, sw), weightGradNT(dy as tf.Tensor2D, sx)]);
    },
  };
  // tfjs types the callback as variadic over tensors and the save function.
}) as unknown as Parameters<typeof tf.customGrad>[0]) as (x: tf.Tensor2D, w: tf.Tensor2D) => tf.Tensor2D;

// y = x·w with w [in, out]; dx = dy·wᵀ, dw = xᵀ·dy (as (dyᵀ·x)ᵀ when that transposes less).
const matMulNN = tf.customGrad(((x: tf.Tensor, w: tf.Tensor, save: tf.GradSaveFunc) => {
  save([x, w]);
  return {
    value: matMul2d(x as tf.Tensor2D, w as tf.Tensor2D),
    gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
      const [sx, sw] = saved as tf.Tensor2D[];
      return tf.tidy(() => [matMul2d(dy as tf.Tensor2D, tf.transpose(sw) as tf.Tensor2D), weightGradNT(sx, dy as tf.Tensor2D)]); // transposed copies freed here (see matMulNT)
    },
  };
  // tfjs types the callback as variadic over tensors and the save function.
}) as unknown as Parameters<typeof tf.customGrad>[0]) as (x: tf.Tensor2D, w: tf.Tensor2D) => tf.Tensor2D;

/** A lookup table: weight [num_embeddings, dim]; ids [...] (int32) → [..., dim]. HF init N(0, 0.02). */
export class Embedding extends Module {
  weight: tf.Variable;
  constructor(readonly numEmbeddings: number, readonly dim: number) {
    super();
    this.weight = this.registerParameter('weight', tf.randomNormal([numEmbeddings, dim], 0, 0.02, 'float32', nextSeed()));
  }
  /**
   * ids [...] → [..., dim].
   * @throws UserError for an id outside [0, numEmbeddings), naming both (tfjs's own error, on the
   *   backends that check, is a bare GatherV2 message; the usual cause is a tokenizer with added
   *   tokens the model has no rows for).
   */
  forward(ids: tf.Tensor): tf.Tensor {
    try {
      return tf.tidy(() => tf.gather(this.weight, ids.cast('int32')));
    } catch (e) {
      const m = /GatherV2: the index value (-?\d+) is not in \[0, (\d+)\]/.exec((e as Error).message);
      if (!m) throw e;
      throw new UserError(`token id ${m[1]} is outside the model's vocabulary: its embedding has ${this.numEmbeddings} rows (ids 0 to ${this.numEmbeddings - 1})`, {
        hint: 'the tokenizer has more tokens than the model (added tokens such as a pad token): resize the embeddings (resizeTokenEmbeddings, as HF\'s resize_token_embeddings) or load an adapter that carries the new rows',
      });
    }
  }
}

/** LayerNorm over the last axis (Ba et al. 2016): weight and bias [dim]; `eps` as HF's `layer_norm_epsilon`. */
export class LayerNorm extends Module {
  weight: tf.Variable;
  bias: tf.Variable;
  constructor(readonly dim: number, readonly eps = 1e-5) {
    super();
    this.weight = this.registerParameter('weight', tf.ones([dim]));
    this.bias = this.registerParameter('bias', tf.zeros([dim]));
  }
  forward(x: tf.Tensor): tf.Tensor {
    return tf.tidy(() => {
      const { mean, variance } = tf.moments(x, -1, true);
      return tf.add(tf.mul(tf.div(tf.sub(x, mean), tf.sqrt(tf.add(variance, this.eps))), this.weight), this.bias);
    });
  }
}

/** RMSNorm (Zhang and Sennrich 2019), as HF's LlamaRMSNorm: `x / sqrt(mean(x²) + eps) * weight`; weight [dim]. */
export class RMSNorm extends Module {
  weight: tf.Variable;
  constructor(readonly dim: number, readonly eps = 1e-6) {
    super();
    this.weight = this.registerParameter('weight', tf.ones([dim]));
  }
  forward(x: tf.Tensor): tf.Tensor {
    return tf.tidy(() => tf.mul(tf.mul(x, tf.rsqrt(tf.add(tf.mean(tf.square(x), -1, true), this.eps))), this.weight));
  }
}

/**
 * Inverted dropout with probability `p`; identity in eval mode or when p = 0. Each call takes one
 * Philox key from the run's stream ({@link nextSeedPair}) and runs the `PeftkitDropout` kernel
 * (kernels/dropout.ts): the mask is computed where the tensor lives, never drawn on the host.
 */
export class Dropout extends Module {
  constructor(readonly p: number) {
    super();
  }
  /** Whether {@link forward} changes anything: training mode and p > 0. */
  get active(): boolean {
    return this.training && this.p > 0;
  }
  forward(x: tf.Tensor): tf.Tensor {
    const d = this.draw();
    return d ? seededDropout(x, d.rate, d.seed0, d.seed1) : x;
  }
  /**
   * The rate and the Philox key of one use of this dropout, drawn from the run's stream as {@link forward} draws
   * them (one {@link nextSeedPair}), for an op that applies the mask itself (the fused attention kernel,
   * kernels/attention.ts); undefined, drawing nothing, when not {@link active}.
   */
  draw(): PeftkitDropoutAttrs | undefined {
    return this.active ? dropoutDraw(this.p) : undefined;
  }
}

/**
 * `PeftkitDropout`'s attrs for dropout probability `rate` with a fresh key from the run's stream (one
 * {@link nextSeedPair}): what {@link Dropout} draws, for a model that keeps its dropout rate as a number.
 * @param rate - drop probability in [0, 1)
 */
export function dropoutDraw(rate: number): PeftkitDropoutAttrs {
  const [seed0, seed1] = nextSeedPair();
  return { rate, seed0, seed1 };
}
