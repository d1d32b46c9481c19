/**
 * The LoRA layer (Hu et al. 2021, arXiv:2106.09685, section 4.1), as HF PEFT's
 * `peft/tuners/lora/layer.py` `LoraLayer` / `Linear`: it wraps a linear-like base layer and adds,
 * per named adapter, a low-rank update
 *
 *   y = base(x) + (dropout(x) Aᵀ) Bᵀ · scaling,   A [r, in], B [out, r], scaling = lora_alpha / r
 *
 * (lora_alpha / √r with rsLoRA, Kalajdzievski 2023, arXiv:2312.03732).
 *
 * Module tree. HF PEFT inserts the base as `c_attn.base_layer` and the adapters as
 * `c_attn.lora_A.default`; here the base layer's own parameters stay where they were
 * (`c_attn.weight`, `c_attn.bias`: the same variables, re-registered on the wrapper), so a base
 * checkpoint still loads after injection, and the adapters live at `c_attn.lora_A.<adapter>.weight`
 * (`lora_B`, `lora_dropout` likewise). The saved adapter keys drop the adapter name, as HF's do:
 * see `LoraAdapterHandle.stateDict` in model.ts.
 */
import * as tf from '@tensorflow/tfjs';
import { BASE_ADAPTER_NAME, Conv1D, Dropout, Linear, Module, applyPerRow, mixedBatchAdapterNames, nextSeed } from '@peftkit/models';

/**
 * What LoRA can wrap: a module mapping x [..., in] to y [..., out].
 *
 * `nn.Linear` (weight [out, in]) and `nn.Conv1D` (weight [in, out]) are recognised by class. Any
 * other module (e.g. QLoRA's 4-bit linear layer) qualifies by implementing `forward`, `inFeatures`,
 * `outFeatures` and {@link LinearBase.denseWeight}; to support merging it also implements
 * {@link LinearBase.addToWeight}.
 */
export interface LinearBase extends Module {
  readonly inFeatures: number;
  readonly outFeatures: number;
  /** x [..., in] → y [..., out]. */
  forward(x: tf.Tensor): tf.Tensor;
  /**
   * The weight as a float32 [out, in] tensor (dequantized where the layer stores it otherwise).
   * The caller treats it as temporary (it may be the live variable or a new tensor: call it inside `tf.tidy`).
   */
  denseWeight?(): tf.Tensor2D;
  /**
   * Adds `deltaOutIn` [out, in] to the weight in place (merging). A layer that cannot hold a float
   * update (a quantized one) leaves this out or throws.
   */
  addToWeight?(deltaOutIn: tf.Tensor2D): void;
  /** Bias [out], when the layer has one. */
  bias?: tf.Variable;
  /**
   * True when the layer stands for GPT-2's Conv1D (its HF weight is stored [in, out]) without being
   * one, e.g. a quantized copy: HF PEFT's `fan_in_fan_out` is then true for it, as for Conv1D.
   */
  readonly fanInFanOut?: boolean;
}

/** HF PEFT's `fan_in_fan_out` for a base layer: true for GPT-2's Conv1D and layers standing for one. */
export function isFanInFanOut(base: LinearBase): boolean {
  return base instanceof Conv1D || base.fanInFanOut === true;
}

/** True for the modules LoRA can wrap (see {@link LinearBase}); a {@link LoraLayer} itself is not. */
export function isLinearBase(m: Module): m is LinearBase {
  if (m instanceof LoraLayer) return false;
  if (m instanceof Linear || m instanceof Conv1D) return true;
  const x = m as unknown as Partial<LinearBase>;
  return typeof x.forward === 'function' && Number.isInteger(x.inFeatures) && Number.isInteger(x.outFeatures) && typeof x.denseWeight === 'function';
}

/** Thrown when merging into a base layer that cannot take a float update. */
export class MergeError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'MergeError';
  }
}

/** How A and B start (HF PEFT's `init_lora_weights`). */
export type LoraInit = boolean | 'gaussian';

/** One adapter's settings in one layer. */
export interface LoraAdapterSpec {
  r: number;
  loraAlpha: number;
  loraDropout: number;
  useRslora: boolean;
  init: LoraInit;
}

interface AdapterState extends LoraAdapterSpec {
  scaling: number;
  enabled: boolean;
  merged: boolean;
  A: tf.Variable; // [r, in]
  B: tf.Variable; // [out, r]
  dropout?: Dropout;
}

/** A module holding one weight, standing for HF's `nn.Linear(.., bias=False)` inside `lora_A` / `lora_B`. */
class LoraWeight extends Module {
  readonly weight: tf.Variable;
  constructor(value: tf.Tensor) {
    super();
    this.weight = this.registerParameter('weight', value, true);
  }
}

/** LoRA's scaling factor: lora_alpha / r, or lora_alpha / √r with rsLoRA. */
export function loraScaling(r: number, loraAlpha: number, useRslora: boolean): number {
  return useRslora ? loraAlpha / Math.sqrt(r) : loraAlpha / r;
}

/**
 * A linear-like layer with LoRA adapters (HF PEFT's `lora.Linear`). Any number of named adapters;
 * each can be enabled, disabled, merged into the base weight and unmerged. Only enabled, unmerged
 * adapters add to the output.
 *
 * Shapes: x [..., in] → y [..., out]; per adapter A [r, in], B [out, r] (also for Conv1D bases).
 */
export class LoraLayer extends Module {
  readonly inFeatures: number;
  readonly outFeatures: number;
  /**
   * True when the base stores its weight as [in, out] (GPT-2's Conv1D): HF's `fan_in_fan_out`.
   * Merging then adds (B·A)ᵀ · scaling.
   */
  readonly fanInFanOut: boolean;
  /** Computes each row with its own adapter inside a mixed batch (see `@peftkit/models`' mixed-batch.ts). */
  readonly supportsMixedBatch = true as const;
  private readonly adapters = new Map<string, AdapterState>();

  /**
   * @param baseLayer - the layer to wrap; its parameters and buffers are re-registered on this
   *   module under their own names (`weight`, `bias`), so state-dict names do not change.
   * @param path - the module's dotted name in the model, for messages.
   */
  constructor(readonly baseLayer: LinearBase, readonly path = '') {
    super();
    this.inFeatures = baseLayer.inFeatures;
    this.outFeatures = baseLayer.outFeatures;
    this.fanInFanOut = baseLayer instanceof Conv1D;
    for (const [name, t] of baseLayer.stateDict()) {
      if (t instanceof tf.Variable) this.registerParameter(name, t, t.trainable);
      else this.registerBuffer(name, t);
    }
    this.registerModule('lora_A', new Module());
    this.registerModule('lora_B', new Module());
    this.registerModule('lora_dropout', new Module());
  }

  /** The base layer's weight variable (Linear [out, in], Conv1D [in, out]), if it has one. */
  get weight(): tf.Variable | undefined {
    const w = (this.baseLayer as unknown as { weight?: unknown }).weight;
    return w instanceof tf.Variable ? w : undefined;
  }

  /** The base layer's bias [out], if any. */
  get bias(): tf.Variable | undefined {
    return this.baseLayer.bias;
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
    if (!s) throw new Error(`${this.path || 'LoRA layer'}: no adapter named "${name}" (has: ${this.adapterNames().join(', ') || 'none'})`);
    return s;
  }

  /** An adapter's settings and scaling. */
  adapterInfo(name: string): LoraAdapterSpec & { scaling: number; enabled: boolean; merged: boolean } {
    const { r, loraAlpha, loraDropout, useRslora, init, scaling, enabled, merged } = this.state(name);
    return { r, loraAlpha, loraDropout, useRslora, init, scaling, enabled, merged };
  }

  /** The adapter's A [r, in] and B [out, r] variables (live: do not dispose). */
  loraWeights(name: string): { A: tf.Variable; B: tf.Variable } {
    const s = this.state(name);
    return { A: s.A, B: s.B };
  }

  /**
   * Adds an adapter (HF's `update_layer`), enabled. Initialisation as HF PEFT's
   * `reset_lora_parameters`: `true` → A ~ U(-1/√in, 1/√in) (torch's `kaiming_uniform_(a=√5)`),
   * B = 0; `"gaussian"` → A ~ N(0, (1/r)²), B = 0; `false` → A and B keep nn.Linear's default
   * init (both random, so the adapter changes the output from the start). Random draws use the
   * seeded stream of `@peftkit/models` (`nextSeed`).
   * @throws Error when the name is taken or r < 1.
   */
  addAdapter(name: string, spec: LoraAdapterSpec): void {
    if (this.adapters.has(name)) throw new Error(`${this.path || 'LoRA layer'} already has an adapter named "${name}"`);
    if (!Number.isInteger(spec.r) || spec.r < 1) throw new Error(`${this.path || 'LoRA layer'}: r must be a positive integer, got ${spec.r}`);
    // nn.Linear(in, r) and nn.Linear(r, out) without bias, as HF builds lora_A and lora_B.
    const a = new Linear(this.inFeatures, spec.r, false);
    const b = new Linear(spec.r, this.outFeatures, false);
    if (spec.init === 'gaussian') a.weight.assign(tf.tidy(() => tf.randomNormal([spec.r, this.inFeatures], 0, 1 / spec.r, 'float32', nextSeed())));
    if (spec.init !== false) tf.tidy(() => b.weight.assign(tf.zerosLike(b.weight)));
    const A = new LoraWeight(a.weight);
    const B = new LoraWeight(b.weight);
    (this.getSubmodule('lora_A') as Module).registerModule(name, A);
    (this.getSubmodule('lora_B') as Module).registerModule(name, B);
    let dropout: Dropout | undefined;
    if (spec.loraDropout > 0) {
      dropout = new Dropout(spec.loraDropout);
      dropout.training = this.training;
      (this.getSubmodule('lora_dropout') as Module).registerModule(name, dropout);
    }
    this.adapters.set(name, { ...spec, scaling: loraScaling(spec.r, spec.loraAlpha, spec.useRslora), enabled: true, merged: false, A: A.weight, B: B.weight, dropout });
  }

  /**
   * Removes an adapter and disposes its tensors. A merged adapter is unmerged first, unless
   * `keepMerged` (merge-and-unload: its update stays in the base weight).
   * @returns the number of adapters left.
   */
  deleteAdapter(name: string, opts: { keepMerged?: boolean } = {}): number {
    const s = this.state(name);
    if (s.merged && !opts.keepMerged) this.unmerge(name);
    s.A.dispose();
    s.B.dispose();
    this.adapters.delete(name);
    // Module has no "remove child": rebuild the three dicts without this adapter.
    for (const dict of ['lora_A', 'lora_B', 'lora_dropout']) {
      const old = this.getSubmodule(dict) as Module;
      const next = new Module();
      for (const [n, c] of old.children()) if (n !== name) next.registerModule(n, c);
      this.registerModule(dict, next);
    }
    return this.adapters.size;
  }

  /** Turns one adapter on or off. Disabling a merged adapter unmerges it first (as HF PEFT does). */
  setEnabled(name: string, enabled: boolean): void {
    const s = this.state(name);
    if (!enabled && s.merged) this.unmerge(name);
    s.enabled = enabled;
  }

  /** Changes an adapter's scaling (e.g. to weigh adapters when serving several). */
  setScaling(name: string, scaling: number): void {
    const s = this.state(name);
    if (s.merged) throw new Error(`${this.path}: adapter "${name}" is merged; unmerge it before changing its scaling`);
    s.scaling = scaling;
  }

  /**
   * x [..., in] → base(x) + Σ over enabled, unmerged adapters of (dropout(x) Aᵀ) Bᵀ · scaling.
   * Inside a mixed batch (`mixedBatchAdapterNames()` set, x [B, ...]) each row instead adds the
   * update of the adapter named for it, whatever is enabled (HF PEFT's `_mixed_batch_forward`).
   */
  forward(x: tf.Tensor): tf.Tensor {
    const rowNames = mixedBatchAdapterNames();
    if (rowNames) return this.mixedBatchForward(x, rowNames);
    return tf.tidy(() => {
      let y = this.baseLayer.forward(x); // [..., out]
      for (const s of this.adapters.values()) {
        if (!s.enabled || s.merged) continue;
        const xd = s.dropout && this.training ? s.dropout.forward(x) : x;
        y = tf.add(y, this.loraUpdate(s, xd));
      }
      return y;
    });
  }

  /** (x Aᵀ) Bᵀ · scaling: x [..., in] → [..., out]. */
  private loraUpdate(s: AdapterState, x: tf.Tensor): tf.Tensor {
    const lead = x.shape.slice(0, -1);
    // Plain 2-D products with the small A and B transposed explicitly: the WASM backend's fast path.
    const h = tf.matMul(x.reshape([-1, this.inFeatures]), s.A.transpose()); // [N, r]
    const d = tf.matMul(h, s.B.transpose()); // [N, out]
    return tf.mul(d.reshape([...lead, this.outFeatures]), s.scaling);
  }

  /**
   * HF PEFT's `lora.Linear._mixed_batch_forward`: the base layer once for the whole batch, then per
   * distinct adapter name the LoRA update of its rows only. Rows named `__base__` or an adapter
   * this layer does not hold get the base output. Inference only: no dropout.
   * @throws Error when an adapter of this layer is merged (HF: "Cannot pass `adapter_names` when
   *   there are merged adapters") or the batch size differs from the number of names.
   */
  private mixedBatchForward(x: tf.Tensor, rowNames: readonly string[]): tf.Tensor {
    const merged = this.mergedAdapters();
    if (merged.length) throw new Error(`${this.path || 'LoRA layer'}: cannot run a mixed-adapter batch while adapter(s) ${merged.join(', ')} are merged into the base weights; unmerge them first`);
    return tf.tidy(() => {
      const y = this.baseLayer.forward(x); // [B, ..., out]
      const delta = applyPerRow(x, rowNames, (name, rows) => {
        const s = name === BASE_ADAPTER_NAME ? undefined : this.adapters.get(name);
        return s ? this.loraUpdate(s, rows) : null;
      }, this.path || 'LoRA layer');
      return delta ? tf.add(y, delta) : y;
    });
  }

  /** scaling · B·A [out, in] of one adapter (HF's `get_delta_weight`, before its fan_in_fan_out transpose). A new tensor. */
  deltaWeight(name: string): tf.Tensor2D {
    const s = this.state(name);
    return tf.tidy(() => tf.mul(tf.matMul(s.B, s.A), s.scaling) as tf.Tensor2D);
  }

  /**
   * Folds an adapter into the base weight: W += scaling · B·A (Linear), W += (scaling · B·A)ᵀ
   * (Conv1D, fan_in_fan_out), or `baseLayer.addToWeight(delta)`. No-op when already merged.
   * @throws MergeError when the base cannot take a float update (a quantized layer): dequantize first.
   */
  merge(name: string): void {
    const s = this.state(name);
    if (s.merged) return;
    this.addDelta(name, 1);
    s.merged = true;
  }

  /** Subtracts a merged adapter from the base weight again. No-op when not merged. */
  unmerge(name: string): void {
    const s = this.state(name);
    if (!s.merged) return;
    this.addDelta(name, -1);
    s.merged = false;
  }

  /** Names of the adapters currently merged into the base weight. */
  mergedAdapters(): string[] {
    return [...this.adapters].filter(([, s]) => s.merged).map(([n]) => n);
  }

  private addDelta(name: string, sign: 1 | -1): void {
    const base = this.baseLayer;
    if (base instanceof Linear || base instanceof Conv1D) {
      tf.tidy(() => {
        let delta: tf.Tensor = this.deltaWeight(name); // [out, in]
        if (base instanceof Conv1D) delta = delta.transpose(); // [in, out]
        base.weight.assign(sign > 0 ? tf.add(base.weight, delta) : tf.sub(base.weight, delta));
      });
      return;
    }
    if (typeof base.addToWeight !== 'function') {
      throw new MergeError(`cannot merge LoRA adapter "${name}" into ${this.path || 'its base layer'}: the base layer (${base.constructor.name}) stores its weight in a form that cannot take a float update (e.g. 4-bit quantized). Dequantize the model first, then merge; or keep the adapter unmerged.`);
    }
    const delta = this.deltaWeight(name);
    try {
      if (sign > 0) base.addToWeight(delta);
      else {
        const neg = tf.neg(delta) as tf.Tensor2D;
        try {
          base.addToWeight(neg);
        } finally {
          neg.dispose();
        }
      }
    } finally {
      delta.dispose();
    }
  }

  /** The base weight as [out, in] with every merged adapter included. A new tensor. */
  denseWeight(): tf.Tensor2D {
    const base = this.baseLayer;
    return tf.tidy(() => {
      if (base instanceof Linear) return base.weight.clone() as tf.Tensor2D;
      if (base instanceof Conv1D) return base.weight.transpose() as tf.Tensor2D;
      if (typeof base.denseWeight !== 'function') throw new Error(`${this.path}: base layer ${base.constructor.name} has no denseWeight()`);
      return base.denseWeight().clone();
    });
  }

  /** The adapters' own parameters (A and B of each), keyed `lora_A.<adapter>.weight`. */
  adapterParameters(name?: string): [string, tf.Variable][] {
    const out: [string, tf.Variable][] = [];
    for (const [n, s] of this.adapters) {
      if (name !== undefined && n !== name) continue;
      out.push([`lora_A.${n}.weight`, s.A], [`lora_B.${n}.weight`, s.B]);
    }
    return out;
  }
}
