import * as tf from '@tensorflow/tfjs';
import { adamWKernel, hasAdamWKernel } from '@peftkit/models';

/** AdamW's hyperparameters, with HF TrainingArguments' names and defaults. */
export interface AdamWOptions {
  /** Adam's β1 (`adam_beta1`, default 0.9). */
  beta1?: number;
  /** Adam's β2 (`adam_beta2`, default 0.999). */
  beta2?: number;
  /** Added to the denominator (`adam_epsilon`, default 1e-8). */
  epsilon?: number;
  /** Decoupled weight decay λ (`weight_decay`, default 0). */
  weightDecay?: number;
  /** Names of the parameters that get no weight decay (HF: biases and normalization weights). */
  noDecay?: (name: string) => boolean;
}

/** What a checkpoint keeps of the optimizer: the update count and the two moments per parameter. */
export interface AdamWState {
  /** Updates done so far (PyTorch's `state['step']`). */
  step: number;
  /** First moments by parameter name; the caller owns (and disposes) these copies. */
  expAvg: Map<string, tf.Tensor>;
  /** Second moments by parameter name; the caller owns (and disposes) these copies. */
  expAvgSq: Map<string, tf.Tensor>;
}

/**
 * AdamW: Adam with decoupled weight decay (Loshchilov and Hutter 2019, "Decoupled Weight Decay
 * Regularization", Algorithm 2), with PyTorch's `torch.optim.AdamW` arithmetic for update `t`:
 *
 *     p ← p · (1 − lr·λ)
 *     m ← β1·m + (1 − β1)·g
 *     v ← β2·v + (1 − β2)·g²
 *     p ← p − (lr / (1 − β1ᵗ)) · m / (√v / √(1 − β2ᵗ) + ε)
 *
 * tfjs ships Adam without decoupled decay; this is the missing piece. Moments are float32 tensors
 * of each parameter's shape, created lazily as zeros, kept out of any `tf.tidy`.
 */
export class AdamW {
  readonly beta1: number;
  readonly beta2: number;
  readonly epsilon: number;
  readonly weightDecay: number;
  /** Updates done so far. */
  step = 0;
  private readonly m = new Map<string, tf.Tensor>();
  private readonly v = new Map<string, tf.Tensor>();
  private readonly noDecay: (name: string) => boolean;

  /** @param params - the parameters to update, by name (names key the state and the checkpoint). */
  constructor(readonly params: [string, tf.Variable][], o: AdamWOptions = {}) {
    this.beta1 = o.beta1 ?? 0.9;
    this.beta2 = o.beta2 ?? 0.999;
    this.epsilon = o.epsilon ?? 1e-8;
    this.weightDecay = o.weightDecay ?? 0;
    this.noDecay = o.noDecay ?? (() => false);
    const names = new Set<string>();
    for (const [n] of params) {
      if (names.has(n)) throw new Error(`AdamW: parameter "${n}" is listed twice`);
      names.add(n);
    }
  }

  /**
   * Applies one update with learning rate `lr` (already scheduled). `grads` holds a gradient of
   * each parameter's shape by parameter name; a parameter without one is left untouched (its
   * moments too, as PyTorch skips parameters whose `.grad` is None). Gradients are not disposed.
   */
  applyGradients(grads: Map<string, tf.Tensor>, lr: number): void {
    this.step += 1;
    const t = this.step;
    const { beta1: b1, beta2: b2, epsilon: eps } = this;
    const bc1 = 1 - b1 ** t;
    const bc2Sqrt = Math.sqrt(1 - b2 ** t);
    const stepSize = lr / bc1;
    const kernel = hasAdamWKernel();
    for (const [name, p] of this.params) {
      const g = grads.get(name);
      if (!g) continue;
      const wd = this.noDecay(name) ? 0 : this.weightDecay;
      const mOld = this.m.get(name);
      const vOld = this.v.get(name);
      const [m, v] = tf.tidy(() => {
        const m0 = mOld ?? tf.zerosLike(p);
        const v0 = vOld ?? tf.zerosLike(p);
        if (kernel) {
          // One kernel, the same float32 operations in the same order (kernels/adamw.ts in @peftkit/models).
          const [p1, m1, v1] = adamWKernel(p, g, m0, v0, { beta1: b1, beta2: b2, epsilon: eps, decay: 1 - lr * wd, bc2Sqrt, stepSize });
          p.assign(p1);
          return [m1, v1];
        }
        const m1 = tf.add(tf.mul(m0, b1), tf.mul(g, 1 - b1));
        const v1 = tf.add(tf.mul(v0, b2), tf.mul(tf.square(g), 1 - b2));
        const decayed = wd !== 0 ? tf.mul(p, 1 - lr * wd) : p;
        const denom = tf.add(tf.div(tf.sqrt(v1), bc2Sqrt), eps);
        p.assign(tf.sub(decayed, tf.mul(tf.div(m1, denom), stepSize)));
        return [m1, v1];
      });
      mOld?.dispose();
      vOld?.dispose();
      this.m.set(name, m);
      this.v.set(name, v);
    }
  }

  /** Copies of the state, for a checkpoint. Parameters never updated have zero moments. */
  getState(): AdamWState {
    const expAvg = new Map<string, tf.Tensor>();
    const expAvgSq = new Map<string, tf.Tensor>();
    for (const [name, p] of this.params) {
      expAvg.set(name, this.m.get(name)?.clone() ?? tf.zerosLike(p));
      expAvgSq.set(name, this.v.get(name)?.clone() ?? tf.zerosLike(p));
    }
    return { step: this.step, expAvg, expAvgSq };
  }

  /**
   * Restores a state saved by {@link AdamW.getState} (the tensors are copied, not taken).
   * @throws Error naming the parameters whose moments are missing or wrongly shaped.
   */
  setState(s: AdamWState): void {
    const problems: string[] = [];
    for (const [name, p] of this.params) {
      for (const [what, map] of [['exp_avg', s.expAvg], ['exp_avg_sq', s.expAvgSq]] as const) {
        const t = map.get(name);
        if (!t) problems.push(`${what} of ${name} is missing`);
        else if (t.shape.join(',') !== p.shape.join(',')) problems.push(`${what} of ${name} has shape [${t.shape}], expected [${p.shape}]`);
      }
    }
    if (problems.length) throw new Error(`optimizer state does not match the parameters: ${problems.join('; ')}`);
    this.disposeState();
    this.step = s.step;
    for (const [name] of this.params) {
      this.m.set(name, tf.clone(s.expAvg.get(name)!));
      this.v.set(name, tf.clone(s.expAvgSq.get(name)!));
    }
  }

  /** Frees the moments. */
  dispose(): void {
    this.disposeState();
  }

  private disposeState(): void {
    for (const t of this.m.values()) t.dispose();
    for (const t of this.v.values()) t.dispose();
    this.m.clear();
    this.v.clear();
  }
}
