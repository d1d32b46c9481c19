/**
 * The IA3 layer (Liu et al. 2022, "Few-Shot Parameter-Efficient Fine-Tuning is Better and Cheaper
 * than In-Context Learning", arXiv:2205.05638, section 3.3), as HF PEFT's
 * `peft/tuners/ia3/layer.py` `IA3Layer` / `Linear`: it wraps a linear layer and multiplies, per
 * named adapter, a learned vector l into its activations:
 *
 *   attention-like layer (keys, values):  y = (x Wᵀ + b) ⊙ l,   l [out_features, 1]
 *   feed-forward layer (`is_feedforward`): y = (x ⊙ l) Wᵀ + b,  l [1, in_features]
 *
 * Those are the shapes HF PEFT creates and saves (`ia3_l`). Several enabled adapters multiply
 * their vectors together (HF's `ia3_scaling *= ia3_l.flatten()`).
 *
 * Module tree: as in the LoRA plugin, the base layer's parameters stay where they were
 * (`c_attn.weight`, `c_attn.bias`: the same variables re-registered on the wrapper), so a base
 * checkpoint still loads after injection; the vectors live at `c_attn.ia3_l.<adapter>`, HF PEFT's
 * names. The saved keys drop the adapter name (see `Ia3AdapterHandle.stateDict` in model.ts).
 */
import * as tf from '@tensorflow/tfjs';
import { Conv1D, Linear, Module, nextSeed } from '@peftkit/models';

/** What IA3 wraps: PyTorch-layout `Linear` (weight [out, in]) and GPT-2's `Conv1D` (weight [in, out]). */
export type Ia3Base = Linear | Conv1D;

/** True for the modules IA3 can wrap (an {@link Ia3Layer} itself is not one). */
export function isIa3Base(m: Module): m is Ia3Base {
  return m instanceof Linear || m instanceof Conv1D;
}

/** HF PEFT's `nn.ParameterDict`: one trainable tensor per adapter name, under `ia3_l.<adapter>`. */
class ParameterDict extends Module {
  add(name: string, value: tf.Tensor, trainable = true): tf.Variable {
    return this.registerParameter(name, value, trainable);
  }
}

interface AdapterState {
  /** [out, 1] (output scaling) or [1, in] (feed-forward, input scaling). */
  l: tf.Variable;
  enabled: boolean;
  merged: boolean;
}

/**
 * Added to the vector before dividing it out of the weight (HF PEFT's `unmerge`: "Add tolerance
 * to avoid division by zero"). So, as HF warns, unmerging is not exact.
 */
export const UNMERGE_EPSILON = 1e-8;

/**
 * A linear layer with IA3 adapters (HF PEFT's `ia3.Linear`). Shapes: x [..., in] → y [..., out].
 * Whether the layer scales its input (feed-forward) or its output is fixed when it is created,
 * as in HF PEFT, and holds for every adapter it gets.
 */
export class Ia3Layer extends Module {
  readonly inFeatures: number;
  readonly outFeatures: number;
  /** True when the base stores its weight as [in, out] (GPT-2's Conv1D): HF's `fan_in_fan_out`. */
  readonly fanInFanOut: boolean;
  private readonly adapters = new Map<string, AdapterState>();

  /**
   * @param baseLayer - the layer to wrap; its parameters are re-registered on this module under
   *   their own names (`weight`, `bias`), so state-dict names do not change.
   * @param isFeedforward - true: l scales the input [1, in]; false: l scales the output [out, 1].
   * @param path - the module's dotted name in the model, for messages.
   */
  constructor(readonly baseLayer: Ia3Base, readonly isFeedforward: boolean, readonly path = '') {
    super();
    this.inFeatures = baseLayer.inFeatures;
    this.outFeatures = baseLayer.outFeatures;
    this.fanInFanOut = baseLayer instanceof Conv1D;
    for (const [name, t] of baseLayer.stateDict()) if (t instanceof tf.Variable) this.registerParameter(name, t, t.trainable);
    this.registerModule('ia3_l', new ParameterDict());
  }

  /** Names of the adapters in this layer, in insertion order. */
  adapterNames(): string[] {
    return [...this.adapters.keys()];
  }

  has(name: string): boolean {
    return this.adapters.has(name);
  }

  private state(name: string): AdapterState {
    const s = this.adapters.get(name);
    if (!s) throw new Error(`${this.path || 'IA3 layer'}: no adapter named "${name}" (has: ${this.adapterNames().join(', ') || 'none'})`);
    return s;
  }

  /** The adapter's vector, [out, 1] or [1, in] (live: do not dispose). */
  vector(name: string): tf.Variable {
    return this.state(name).l;
  }

  /** Whether the adapter is enabled and whether it is merged into the base weight. */
  adapterInfo(name: string): { enabled: boolean; merged: boolean } {
    const { enabled, merged } = this.state(name);
    return { enabled, merged };
  }

  /**
   * Adds an adapter (HF's `update_layer`), enabled. `init` true: l = 1 (the layer computes the
   * base output; HF's `reset_ia3_parameters`); false: l ~ N(0, 1) (`torch.randn`), drawn from the
   * seeded stream of `@peftkit/models` (`nextSeed`).
   * @throws Error when the name is taken.
   */
  addAdapter(name: string, init: boolean): void {
    if (this.adapters.has(name)) throw new Error(`${this.path || 'IA3 layer'} already has an adapter named "${name}"`);
    const shape: [number, number] = this.isFeedforward ? [1, this.inFeatures] : [this.outFeatures, 1];
    const value = init ? tf.ones(shape) : tf.randomNormal(shape, 0, 1, 'float32', nextSeed());
    const l = (this.getSubmodule('ia3_l') as ParameterDict).add(name, value);
    this.adapters.set(name, { l, enabled: true, merged: false });
  }

  /**
   * Removes an adapter and disposes its vector. A merged adapter is divided out first, unless
   * `keepMerged` (merge-and-unload: its scaling stays in the base weight).
   * @returns the number of adapters left.
   */
  deleteAdapter(name: string, opts: { keepMerged?: boolean } = {}): number {
    const s = this.state(name);
    if (s.merged && !opts.keepMerged) this.unmerge(name);
    s.l.dispose();
    this.adapters.delete(name);
    // Module has no "remove child": rebuild the dict without this adapter.
    const next = new ParameterDict();
    for (const [n, st] of this.adapters) next.add(n, st.l, st.l.trainable);
    this.registerModule('ia3_l', next);
    return this.adapters.size;
  }

  /** Turns one adapter on or off. Disabling a merged adapter unmerges it first (as HF PEFT does). */
  setEnabled(name: string, enabled: boolean): void {
    const s = this.state(name);
    if (!enabled && s.merged) this.unmerge(name);
    s.enabled = enabled;
  }

  /**
   * x [..., in] → y [..., out]: the base layer, with the product of the enabled, unmerged
   * adapters' vectors multiplied into its input (feed-forward) or its output.
   */
  forward(x: tf.Tensor): tf.Tensor {
    const active = [...this.adapters.values()].filter((s) => s.enabled && !s.merged);
    if (!active.length) return this.baseLayer.forward(x);
    return tf.tidy(() => {
      let scale = active[0].l.reshape([-1]); // [in] or [out]
      for (const s of active.slice(1)) scale = tf.mul(scale, s.l.reshape([-1]));
      if (this.isFeedforward) return this.baseLayer.forward(tf.mul(x, scale)); // (x ⊙ l) Wᵀ + b
      return tf.mul(this.baseLayer.forward(x), scale); // (x Wᵀ + b) ⊙ l
    });
  }

  /**
   * Folds an adapter into the base layer (HF PEFT's `ia3.Linear.merge`): W ⊙ l with l broadcast
   * over W's output axis (output scaling) or input axis (feed-forward), transposed for Conv1D's
   * [in, out] weight; the bias is scaled too for output scaling (b ⊙ l), left alone for
   * feed-forward. Forward then skips the adapter. No-op when already merged.
   */
  merge(name: string): void {
    const s = this.state(name);
    if (s.merged) return;
    this.scaleBase(s.l, false);
    s.merged = true;
  }

  /**
   * Divides a merged adapter back out of the base layer, by l + 1e-8 as HF PEFT does (so not
   * exactly: HF warns "Unmerge result can be inaccurate for (IA)^3"). No-op when not merged.
   */
  unmerge(name: string): void {
    const s = this.state(name);
    if (!s.merged) return;
    this.scaleBase(s.l, true);
    s.merged = false;
  }

  /** Names of the adapters currently merged into the base weight. */
  mergedAdapters(): string[] {
    return [...this.adapters].filter(([, s]) => s.merged).map(([n]) => n);
  }

  private scaleBase(l: tf.Variable, divide: boolean): void {
    const base = this.baseLayer;
    tf.tidy(() => {
      // HF: `transpose(ia3_l, fan_in_fan_out)`: [out, 1] / [1, in] for Linear's [out, in];
      // [1, out] / [in, 1] for Conv1D's [in, out].
      const v = this.fanInFanOut ? l.transpose() : l;
      const f = divide ? tf.add(v, UNMERGE_EPSILON) : v;
      base.weight.assign(divide ? tf.div(base.weight, f) : tf.mul(base.weight, f));
      if (!this.isFeedforward && base.bias) {
        const fb = divide ? tf.add(l.reshape([-1]), UNMERGE_EPSILON) : l.reshape([-1]);
        base.bias.assign(divide ? tf.div(base.bias, fb) : tf.mul(base.bias, fb));
      }
    });
  }

  /** The adapters' own parameters, keyed `ia3_l.<adapter>`. */
  adapterParameters(name?: string): [string, tf.Variable][] {
    return [...this.adapters].filter(([n]) => name === undefined || n === name).map(([n, s]) => [`ia3_l.${n}`, s.l]);
  }
}
