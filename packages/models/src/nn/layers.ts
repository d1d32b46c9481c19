import * as tf from '@tensorflow/tfjs';
import { Module } from './module.js';
import { UserError } from '@peftkit/core';
import { nextSeed, nextSeedPair } from './rng.js';
import { seededDropout, type PeftkitDropoutAttrs } from '../kernels/dropout.js';
import { hasNormKernels, normGradKernel, normKernel } from '../kernels/norm.js';
import { matMul2d, matMulTransposed, productsTakeTransposes } from '../kernels/matmul.js';

/** Whether `t` can receive a gradient: not a frozen variable (a frozen one's gradient is never asked for). */
const wantsGrad = (t: tf.Tensor) => !(t instanceof tf.Variable) || t.trainable;

// tfjs types a custom-gradient callback as variadic over tensors and the save function.
type CustomGradFn = Parameters<typeof tf.customGrad>[0];

/**
 * Σ over every leading axis of `t` [..., dim] → [dim]: a bias's or a norm weight's gradient. A plain tf.sum:
 * on WASM peftkit's Sum (kernels/wasm/sum.ts) reads the rows in memory order, where tfjs's own kernel
 * transposed first; the product 1ᵀ·t, once faster than tfjs's Sum, is 3 to 5 times slower than ours
 * ([2048, 512], one thread: 5.0 ms against 1.3 ms).
 */
function sumRows(t: tf.Tensor): tf.Tensor1D {
  const dim = t.shape[t.shape.length - 1]!;
  return tf.sum(t.reshape([-1, dim]), 0) as tf.Tensor1D;
}

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
    return matMulLast(x, this.weight, true, this.bias);
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
    return matMulLast(x, this.weight, false, this.bias);
  }
}

/**
 * `x` [..., in] times `w` over the last axis, plus `bias` [out] when given: w is [out, in] when `transposeW`,
 * else [in, out]. Result [..., out].
 *
 * Leading axes are folded so that every product is 2-D. Transposed operands go through `matMulTransposed`
 * (kernels/matmul.ts): read in place by peftkit's GEMM on WASM, materialised first elsewhere, where only plain
 * products are fast (XNNPACK's fast path when peftkit's GEMM is off, where a flagged product ran 10 to 30 times
 * slower; peftkit's tiled kernel on WebGPU). The gradient is written out for the same reason: tfjs's own matMul
 * gradient uses the transposed forms whatever the backend.
 * The bias is added inside the same op: a separate Add would keep the product without bias ([N, out]) for its
 * own gradient until the backward pass ends (tfjs saves an Add's inputs); the bias's gradient is Σ_rows dy.
 */
export function matMulLast(x: tf.Tensor, w: tf.Tensor, transposeW: boolean, bias?: tf.Tensor): tf.Tensor {
  const lead = x.shape.slice(0, -1);
  const inF = x.shape[x.shape.length - 1];
  const out = transposeW ? w.shape[0] : w.shape[1];
  // Reshapes that save nothing: tfjs's Reshape keeps its input for the backward pass (for its shape only).
  const x2 = reshapeUnsaved(x, [-1, inF]) as tf.Tensor2D;
  const frozen = w instanceof tf.Variable && !w.trainable;
  const y = frozen ? frozenProduct(x2, w as tf.Variable & tf.Tensor2D, transposeW, bias) : trainedProduct(x2, w as tf.Tensor2D, transposeW, bias);
  return reshapeUnsaved(y, [...lead, out] as number[]);
}

/**
 * a + b for tensors of the same shape (a residual connection) that keeps nothing for the backward pass: tfjs's Add
 * saves both inputs (to reduce a broadcast gradient to their shapes), which kept, e.g., each sublayer's dropped-out
 * output alive until the gradient was computed. The gradient is dy for both (two clones sharing dy's buffer: tfjs
 * disposes a gradient when it adds another to it, so one tensor must not stand for two inputs' gradients).
 * @param a - any shape
 * @param b - a's shape
 * @returns a + b
 * @throws Error when the shapes differ (no broadcasting here).
 */
export function residualAdd(a: tf.Tensor, b: tf.Tensor): tf.Tensor {
  if (a.shape.join() !== b.shape.join()) throw new Error(`residualAdd: shapes [${a.shape.join(', ')}] and [${b.shape.join(', ')}] differ`);
  if (!tf.engine().isTapeOn()) return tf.add(a, b);
  const f = tf.customGrad(((aa: tf.Tensor, bb: tf.Tensor) => ({ value: tf.add(aa, bb), gradFunc: (dy: tf.Tensor) => [tf.clone(dy), tf.clone(dy)] })) as unknown as CustomGradFn);
  return f(a, b) as tf.Tensor;
}

/**
 * `tf.reshape` that keeps nothing for the backward pass: tfjs's Reshape gradient saves its input (to read its
 * shape), which keeps the input's buffer alive until the gradient is computed even when nothing else needs it
 * (an activation feeding a frozen projection, attention's output before the output projection). Outside a
 * gradient computation it is tf.reshape itself.
 * @param x - any shape
 * @param shape - the new shape (one axis may be -1), as tf.reshape
 * @returns x's data in `shape`
 * @throws Error (tfjs's) when the sizes differ.
 */
export function reshapeUnsaved(x: tf.Tensor, shape: number[]): tf.Tensor {
  if (!tf.engine().isTapeOn()) return tf.reshape(x, shape);
  const inShape = x.shape;
  const f = tf.customGrad(((xx: tf.Tensor) => ({ value: tf.reshape(xx, shape), gradFunc: (dy: tf.Tensor) => tf.reshape(dy, inShape) })) as unknown as CustomGradFn);
  return f(x) as tf.Tensor;
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

/** Up to this many rows (a decoding step), off peftkit's WASM GEMM, m·Wᵀ always uses the cached Wᵀ: a GEMM with one output column wastes XNNPACK's vector lanes. */
const FEW_ROWS = 16;

/**
 * m·Wᵀ for a frozen W [p, q] and m [rows, q]. On WASM with peftkit's GEMM, one product that reads W in place
 * (a decoding step's few rows too). Elsewhere as plain products, by whichever costs less: the cached
 * Wᵀ (one transpose, but the weight's memory again, twice counting XNNPACK's packed copy), or
 * (W·mᵀ)ᵀ (two transposes of activations per call, no copy of W). The cache is taken when W is no
 * bigger than the activations transposed instead (p·q ≤ rows·(p + q): small models, long batches)
 * and for a decoding step's few rows; a 1 x 128 LoRA step of GPT-2 small takes the other form and
 * keeps no copy of its frozen weights.
 */
function timesTransposed(m: tf.Tensor2D, w: tf.Variable & tf.Tensor2D): tf.Tensor2D {
  const rows = m.shape[0];
  const [p, q] = w.shape as [number, number];
  if (productsTakeTransposes()) return matMulTransposed(m, w, false, true); // no copy at all
  if (rows <= FEW_ROWS) return matMul2d(m, frozenTranspose(w));
  if (p * q <= rows * (p + q)) return matMul2d(m, frozenTranspose(w));
  return tf.tidy(() => tf.transpose(matMul2d(w, tf.transpose(m) as tf.Tensor2D)) as tf.Tensor2D);
}

/**
 * x·W or x·Wᵀ (+ bias) where W is frozen: only x (and a trainable bias) get a gradient, so W's (as costly as the
 * forward product) is never computed, and nothing needs saving. A frozen bias is a constant of the op.
 */
function frozenProduct(x: tf.Tensor2D, w: tf.Variable & tf.Tensor2D, transposeW: boolean, bias: tf.Tensor | undefined): tf.Tensor2D {
  const product = (xx: tf.Tensor2D, b: tf.Tensor | undefined) => {
    const y = transposeW ? timesTransposed(xx, w) : matMul2d(xx, w);
    return b ? tf.add(y, b) as tf.Tensor2D : y;
  };
  // dx = dy·W (W [out, in]) or dy·Wᵀ (W [in, out]), as plain products.
  const dx = (dy: tf.Tensor) => tf.tidy(() => (transposeW ? matMul2d(dy as tf.Tensor2D, w) : timesTransposed(dy as tf.Tensor2D, w)));
  if (bias && wantsGrad(bias)) {
    const f = tf.customGrad(((xx: tf.Tensor, b: tf.Tensor) => ({
      value: product(xx as tf.Tensor2D, b),
      gradFunc: (dy: tf.Tensor) => [dx(dy), tf.tidy(() => sumRows(dy))],
    })) as unknown as CustomGradFn) as (x: tf.Tensor2D, b: tf.Tensor) => tf.Tensor2D;
    return f(x, bias);
  }
  const f = tf.customGrad(((xx: tf.Tensor) => ({ value: product(xx as tf.Tensor2D, bias), gradFunc: (dy: tf.Tensor) => [dx(dy)] })) as unknown as CustomGradFn) as (x: tf.Tensor2D) => tf.Tensor2D;
  return f(x);
}

/**
 * aᵀ·b for a [N, p] and b [N, q] (result [p, q]): one product reading a in place on WASM with peftkit's GEMM;
 * elsewhere as plain products, transposing whichever costs fewer elements: a (N·p), or b and the result, as
 * (bᵀ·a)ᵀ (N·q + p·q).
 * The weight gradient of y = x·Wᵀ is `weightGradNT(dy, x)` = dyᵀ·x ([out, in]): for a tied LM head
 * (out = vocabulary) the second form is 10 to 30 times fewer elements. That of y = x·W is
 * `weightGradNT(x, dy)` = xᵀ·dy ([in, out]): for GPT-2's MLP c_proj (in = 4·out) the second form
 * transposes dy [N, out] and the small result instead of x [N, 4·out].
 */
export function weightGradNT(a: tf.Tensor2D, b: tf.Tensor2D): tf.Tensor2D {
  const [N, p] = a.shape;
  const q = b.shape[1];
  if (productsTakeTransposes()) return matMulTransposed(a, b, true, false);
  if (N * p <= N * q + p * q) return matMul2d(tf.transpose(a) as tf.Tensor2D, b);
  return tf.transpose(matMul2d(tf.transpose(b) as tf.Tensor2D, a)) as tf.Tensor2D;
}

/**
 * x·wᵀ (w [out, in], `transposeW`) or x·w (w [in, out]), + bias, with a trainable w: dx = dy·w and dw = dyᵀ·x
 * (resp. dx = dy·wᵀ, dw = xᵀ·dy), all as plain products; d bias = Σ_rows dy (zeros for a frozen bias). Saves x
 * and w.
 */
function trainedProduct(x: tf.Tensor2D, w: tf.Tensor2D, transposeW: boolean, bias: tf.Tensor | undefined): tf.Tensor2D {
  const gradBias = !!bias && wantsGrad(bias);
  const f = tf.customGrad(((...args: unknown[]) => {
    const save = args[args.length - 1] as tf.GradSaveFunc;
    const [xx, ww] = args as [tf.Tensor2D, tf.Tensor2D];
    save([xx, ww]);
    const y = transposeW ? matMulTransposed(xx, ww, false, true) : matMul2d(xx, ww);
    return {
      value: bias ? tf.add(y, bias) : y,
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
        const [sx, sw] = saved as tf.Tensor2D[];
        const g = dy as tf.Tensor2D;
        // In a tidy: tfjs runs a custom gradient outside any per-node scope, so the transposed copies
        // would otherwise live until the whole backward pass ends.
        return tf.tidy(() => [
          transposeW ? matMul2d(g, sw!) : matMulTransposed(g, sw!, false, true),
          weightGradNT(transposeW ? g : sx!, transposeW ? sx! : g), // dyᵀ·x or xᵀ·dy, in the cheaper form
          ...(bias ? [gradBias ? sumRows(g) : tf.zerosLike(bias)] : []),
        ]);
      },
    };
  }) as unknown as CustomGradFn) as (...xs: tf.Tensor[]) => tf.Tensor2D;
  return bias ? f(x, w, bias) : f(x, w);
}

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

/** LayerNorm over the last axis (Ba et al. 2016): weight and bias [dim]; `eps` as HF's `layer_norm_epsilon`. Runs {@link layerNorm}. */
export class LayerNorm extends Module {
  weight: tf.Variable;
  bias: tf.Variable;
  constructor(readonly dim: number, readonly eps = 1e-5) {
    super();
    this.weight = this.registerParameter('weight', tf.ones([dim]));
    this.bias = this.registerParameter('bias', tf.zeros([dim]));
  }
  forward(x: tf.Tensor): tf.Tensor {
    return layerNorm(x, this.weight, this.bias, this.eps);
  }
}

/** RMSNorm (Zhang and Sennrich 2019), as HF's LlamaRMSNorm: `x / sqrt(mean(x²) + eps) * weight`; weight [dim]. Runs {@link rmsNorm}. */
export class RMSNorm extends Module {
  weight: tf.Variable;
  constructor(readonly dim: number, readonly eps = 1e-6) {
    super();
    this.weight = this.registerParameter('weight', tf.ones([dim]));
  }
  forward(x: tf.Tensor): tf.Tensor {
    return rmsNorm(x, this.weight, this.eps);
  }
}

const layerNormOps = new Map<number, (x: tf.Tensor, w: tf.Tensor, b: tf.Tensor) => tf.Tensor>();

/**
 * LayerNorm over the last axis: (x − mean) / √(var + eps) · weight + bias, with the biased variance
 * (torch.nn.LayerNorm, Ba et al. 2016). One op that keeps only x and the per-row mean and √(var + eps)
 * ([..., 1]) for the backward pass (tfjs keeps every tensor made inside a gradient computation; the composed
 * form kept six [..., dim] tensors). Its gradient, with x̂ = (x − mean) / σ and gw = dy · weight:
 * dx = (gw − mean(gw) − x̂ · mean(gw · x̂)) / σ, d weight = Σ_rows dy · x̂, d bias = Σ_rows dy
 * (the means over the last axis; the standard LayerNorm backward, e.g. Ba et al. 2016 section 5).
 * A frozen variable weight or bias gets zeros instead (its gradient is never read). y, the statistics and dx are
 * `PeftkitNorm`'s kernels where the backend has them (WASM; kernels/norm.ts), within float32 rounding of the ops.
 * @param x - [..., dim] float32
 * @param weight - [dim]
 * @param bias - [dim]
 * @param eps - added to the variance
 * @returns [..., dim]
 */
export function layerNorm(x: tf.Tensor, weight: tf.Tensor, bias: tf.Tensor, eps: number): tf.Tensor {
  const forward = (xx: tf.Tensor, w: tf.Tensor, b: tf.Tensor) => {
    if (hasNormKernels()) {
      const k = normKernel('layer', xx, w, b, eps);
      return { y: k.y, mean: k.a, std: k.b! };
    }
    const { mean, variance } = tf.moments(xx, -1, true);
    const std = tf.sqrt(tf.add(variance, eps));
    return { y: tf.add(tf.mul(tf.div(tf.sub(xx, mean), std), w), b), mean, std };
  };
  if (!tf.engine().isTapeOn()) return tf.tidy(() => forward(x, weight, bias).y);
  let op = layerNormOps.get(eps);
  if (!op) {
    op = tf.customGrad(((xx: tf.Tensor, w: tf.Tensor, b: tf.Tensor, save: tf.GradSaveFunc) => {
      const { y, mean, std } = forward(xx, w, b);
      save([xx, mean, std, w]);
      const [gradW, gradB] = [wantsGrad(w), wantsGrad(b)]; // of the inputs: what save() keeps are plain clones
      return {
        value: y,
        gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => tf.tidy(() => {
          const [sx, sMean, sStd, sw] = saved as [tf.Tensor, tf.Tensor, tf.Tensor, tf.Tensor];
          let xh: tf.Tensor | undefined;
          const xhat = () => (xh ??= tf.div(tf.sub(sx, sMean), sStd)); // only where dx is composed or w is trained
          let dx: tf.Tensor;
          if (hasNormKernels()) dx = normGradKernel('layer', sx, sMean, sStd, sw, dy);
          else {
            const gw = tf.mul(dy, sw);
            dx = tf.div(tf.sub(tf.sub(gw, tf.mean(gw, -1, true)), tf.mul(xhat(), tf.mean(tf.mul(gw, xhat()), -1, true))), sStd);
          }
          const dw = gradW ? sumRows(tf.mul(dy, xhat())) : tf.zerosLike(sw);
          const db = gradB ? sumRows(dy) : tf.zeros(sw.shape);
          return [dx, dw, db];
        }),
      };
    }) as unknown as CustomGradFn) as (x: tf.Tensor, w: tf.Tensor, b: tf.Tensor) => tf.Tensor;
    layerNormOps.set(eps, op);
  }
  return op(x, weight, bias);
}

const rmsNormOps = new Map<number, (x: tf.Tensor, w: tf.Tensor) => tf.Tensor>();

/**
 * RMSNorm over the last axis as HF's LlamaRMSNorm (modeling_llama.py): x · rsqrt(mean(x²) + eps) · weight, in
 * float32 (Zhang and Sennrich 2019). One op that keeps only x and the per-row r = rsqrt(mean(x²) + eps)
 * ([..., 1]) for the backward pass. Its gradient, with x̂ = x · r and gw = dy · weight:
 * dx = r · (gw − x̂ · mean(gw · x̂)), d weight = Σ_rows dy · x̂ (zeros for a frozen variable weight). y, r and dx are
 * `PeftkitNorm`'s kernels where the backend has them (WASM; kernels/norm.ts).
 * @param x - [..., dim] float32
 * @param weight - [dim]
 * @param eps - added to the mean square
 * @returns [..., dim]
 */
export function rmsNorm(x: tf.Tensor, weight: tf.Tensor, eps: number): tf.Tensor {
  const forward = (xx: tf.Tensor, w: tf.Tensor) => {
    if (hasNormKernels()) {
      const k = normKernel('rms', xx, w, undefined, eps);
      return { y: k.y, r: k.a };
    }
    const r = tf.rsqrt(tf.add(tf.mean(tf.square(xx), -1, true), eps));
    return { y: tf.mul(tf.mul(xx, r), w), r };
  };
  if (!tf.engine().isTapeOn()) return tf.tidy(() => forward(x, weight).y);
  let op = rmsNormOps.get(eps);
  if (!op) {
    op = tf.customGrad(((xx: tf.Tensor, w: tf.Tensor, save: tf.GradSaveFunc) => {
      const { y, r } = forward(xx, w);
      save([xx, r, w]);
      const gradW = wantsGrad(w); // of the input: what save() keeps is a plain clone
      return {
        value: y,
        gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => tf.tidy(() => {
          const [sx, sr, sw] = saved as [tf.Tensor, tf.Tensor, tf.Tensor];
          let xh: tf.Tensor | undefined;
          const xhat = () => (xh ??= tf.mul(sx, sr)); // only where dx is composed or w is trained
          let dx: tf.Tensor;
          if (hasNormKernels()) dx = normGradKernel('rms', sx, sr, undefined, sw, dy);
          else {
            const gw = tf.mul(dy, sw);
            dx = tf.mul(sr, tf.sub(gw, tf.mul(xhat(), tf.mean(tf.mul(gw, xhat()), -1, true))));
          }
          return [dx, gradW ? sumRows(tf.mul(dy, xhat())) : tf.zerosLike(sw)];
        }),
      };
    }) as unknown as CustomGradFn) as (x: tf.Tensor, w: tf.Tensor) => tf.Tensor;
    rmsNormOps.set(eps, op);
  }
  return op(x, weight);
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
