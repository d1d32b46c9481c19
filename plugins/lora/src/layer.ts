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
import { BASE_ADAPTER_NAME, Conv1D, Dropout, Embedding, Linear, Module, applyPerRow, matMulLast, mixedBatchAdapterNames, nextSeed, residualAdd } from '@peftkit/models';
import { detached, doraDelta, doraMergedWeight, doraUnmergedWeight, weightNorm } from './dora.js';

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
  /** DoRA (see dora.ts): a trainable magnitude per output feature. Default false. */
  useDora?: boolean;
}

interface AdapterState extends LoraAdapterSpec {
  scaling: number;
  enabled: boolean;
  merged: boolean;
  A: tf.Variable; // [r, in]
  B: tf.Variable; // [out, r]
  dropout?: Dropout;
  /** DoRA's magnitude m [out]. */
  magnitude?: tf.Variable;
  /** DoRA: ‖W + s·B·A‖ [out] taken when merging; unmerging divides by m / this (HF's cached `weight_norm`). */
  mergedNorm?: tf.Tensor1D;
}

/**
 * A module holding one weight, standing for HF's `nn.Linear(.., bias=False)` inside `lora_A` /
 * `lora_B`, and for `DoraLinearLayer` (its parameter `weight` is the magnitude) inside `lora_magnitude_vector`.
 */
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

/** What every LoRA adapter keeps, on a linear-like layer or an embedding. */
interface BaseAdapterState {
  r: number;
  loraAlpha: number;
  useRslora: boolean;
  scaling: number;
  enabled: boolean;
  merged: boolean;
  A: tf.Variable;
  B: tf.Variable;
  /** DoRA's magnitude vector m [out or dim]. */
  magnitude?: tf.Variable;
  /** DoRA: the norm the weight was merged with, for unmerging. */
  mergedNorm?: tf.Tensor1D;
}

/**
 * The adapter bookkeeping {@link LoraLayer} and {@link LoraEmbedding} share, as HF PEFT's
 * `LoraLayer` base class does for `lora.Linear` and `lora.Embedding`: the named adapters, their
 * lookup, enabling, scaling and which are merged. The subclasses do the arithmetic.
 */
abstract class LoraAdapterLayer<S extends BaseAdapterState> extends Module {
  /** Computes each row with its own adapter inside a mixed batch (see `@peftkit/models`' mixed-batch.ts). */
  readonly supportsMixedBatch = true as const;
  protected readonly adapters = new Map<string, S>();

  /**
   * @param path - the module's dotted name in the model, for messages.
   * @param kind - what messages call the layer when it has no path.
   */
  constructor(readonly path: string, protected readonly kind: string) {
    super();
  }

  /** Names of the adapters in this layer, in insertion order. */
  adapterNames(): string[] {
    return [...this.adapters.keys()];
  }

  has(name: string): boolean {
    return this.adapters.has(name);
  }

  /** @throws Error naming the adapters there are when `name` is not one of them. */
  protected state(name: string): S {
    const s = this.adapters.get(name);
    if (!s) throw new Error(`${this.path || this.kind}: no adapter named "${name}" (has: ${this.adapterNames().join(', ') || 'none'})`);
    return s;
  }

  /** The adapter's A and B variables (live: do not dispose); shapes in the subclass. */
  loraWeights(name: string): { A: tf.Variable; B: tf.Variable } {
    const s = this.state(name);
    return { A: s.A, B: s.B };
  }

  /** DoRA's magnitude vector of an adapter (live: do not dispose), or undefined for plain LoRA. */
  magnitudeVector(name: string): tf.Variable | undefined {
    return this.state(name).magnitude;
  }

  /** Turns one adapter on or off. Disabling a merged adapter unmerges it first (as HF PEFT does). */
  setEnabled(name: string, enabled: boolean): void {
    const s = this.state(name);
    if (!enabled && s.merged) this.unmerge(name);
    s.enabled = enabled;
  }

  /** Changes an adapter's scaling (e.g. to weigh adapters when serving several). @throws Error when it is merged. */
  setScaling(name: string, scaling: number): void {
    const s = this.state(name);
    if (s.merged) throw new Error(`${this.path}: adapter "${name}" is merged; unmerge it before changing its scaling`);
    s.scaling = scaling;
  }

  /** Names of the adapters currently merged into the base weight. */
  mergedAdapters(): string[] {
    return [...this.adapters].filter(([, s]) => s.merged).map(([n]) => n);
  }

  /** Subtracts a merged adapter from the base weight again. */
  abstract unmerge(name: string): void;
}

/**
 * A linear-like layer with LoRA adapters (HF PEFT's `lora.Linear`). Any number of named adapters;
 * each can be enabled, disabled, merged into the base weight and unmerged. Only enabled, unmerged
 * adapters add to the output.
 *
 * Shapes: x [..., in] → y [..., out]; per adapter A [r, in], B [out, r] (also for Conv1D bases).
 */
export class LoraLayer extends LoraAdapterLayer<AdapterState> {
  readonly inFeatures: number;
  readonly outFeatures: number;
  /**
   * True when the base stores its weight as [in, out] (GPT-2's Conv1D): HF's `fan_in_fan_out`.
   * Merging then adds (B·A)ᵀ · scaling.
   */
  readonly fanInFanOut: boolean;

  /**
   * @param baseLayer - the layer to wrap; its parameters and buffers are re-registered on this
   *   module under their own names (`weight`, `bias`), so state-dict names do not change.
   * @param path - the module's dotted name in the model, for messages.
   */
  constructor(readonly baseLayer: LinearBase, path = '') {
    super(path, 'LoRA layer');
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
    this.registerModule('lora_magnitude_vector', new Module());
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

  /** An adapter's settings and scaling. */
  adapterInfo(name: string): Required<LoraAdapterSpec> & { scaling: number; enabled: boolean; merged: boolean } {
    const { r, loraAlpha, loraDropout, useRslora, init, scaling, enabled, merged, magnitude } = this.state(name);
    return { r, loraAlpha, loraDropout, useRslora, init, useDora: magnitude !== undefined, scaling, enabled, merged };
  }

  /**
   * Adds an adapter (HF's `update_layer`), enabled. Initialisation as HF PEFT's
   * `reset_lora_parameters`: `true` → A ~ U(-1/√in, 1/√in) (torch's `kaiming_uniform_(a=√5)`),
   * B = 0; `"gaussian"` → A ~ N(0, (1/r)²), B = 0; `false` → A and B keep nn.Linear's default
   * init (both random, so the adapter changes the output from the start). Random draws use the
   * seeded stream of `@peftkit/models` (`nextSeed`).
   *
   * With `useDora` the magnitude starts as ‖W + scaling·B·A‖ per output row (HF's
   * `DoraLinearLayer.update_layer`), so the adapter's output at initialisation is plain LoRA's.
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
    const scaling = loraScaling(spec.r, spec.loraAlpha, spec.useRslora);
    let magnitude: tf.Variable | undefined;
    if (spec.useDora) {
      const m = new LoraWeight(tf.tidy(() => weightNorm(this.denseWeight(), tf.mul(tf.matMul(B.weight, A.weight), scaling) as tf.Tensor2D)));
      (this.getSubmodule('lora_magnitude_vector') as Module).registerModule(name, m);
      magnitude = m.weight;
    }
    this.adapters.set(name, { ...spec, useDora: !!spec.useDora, scaling, enabled: true, merged: false, A: A.weight, B: B.weight, dropout, magnitude });
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
    s.magnitude?.dispose();
    s.mergedNorm?.dispose();
    this.adapters.delete(name);
    // Module has no "remove child": rebuild the dicts without this adapter.
    for (const dict of ['lora_A', 'lora_B', 'lora_dropout', 'lora_magnitude_vector']) {
      const old = this.getSubmodule(dict) as Module;
      const next = new Module();
      for (const [n, c] of old.children()) if (n !== name) next.registerModule(n, c);
      this.registerModule(dict, next);
    }
    return this.adapters.size;
  }

  /**
   * x [..., in] → base(x) + Σ over enabled, unmerged adapters of (dropout(x) Aᵀ) Bᵀ · scaling;
   * a DoRA adapter adds (f − 1) ⊙ (x Wᵀ) + f ⊙ (x Aᵀ) Bᵀ · scaling instead, f = m / ‖W + scaling·B·A‖
   * (norm detached; HF's `DoraLinearLayer.forward`: with dropout active in training, x Wᵀ is taken of
   * the dropped-out x, else of x). Inside a mixed batch (`mixedBatchAdapterNames()` set, x [B, ...])
   * each row instead adds the update of the adapter named for it, whatever is enabled (HF PEFT's
   * `_mixed_batch_forward`).
   */
  forward(x: tf.Tensor): tf.Tensor {
    const rowNames = mixedBatchAdapterNames();
    if (rowNames) return this.mixedBatchForward(x, rowNames);
    return tf.tidy(() => {
      const base = this.baseLayer.forward(x); // [..., out]
      let y = base;
      for (const s of this.adapters.values()) {
        if (!s.enabled || s.merged) continue;
        const dropped = !!s.dropout && this.training;
        const xd = dropped ? s.dropout!.forward(x) : x;
        const lora = this.loraUpdate(s, xd);
        if (!s.magnitude) {
          y = residualAdd(y, lora); // keeps neither [..., out] term for the backward pass, as tf.add would
          continue;
        }
        // x Wᵀ without the bias: the base output minus its bias, or the base run on the dropped-out x.
        const bias = this.baseLayer.bias;
        const b = dropped ? this.baseLayer.forward(xd) : base;
        const baseNoBias = bias ? tf.sub(b, bias) : b;
        y = tf.add(y, doraDelta(baseNoBias, lora, s.magnitude as tf.Tensor1D, this.doraNorm(s)));
      }
      return y;
    });
  }

  /** ‖W + scaling·B·A‖ per output row [out], W the base weight (with merged adapters), detached. */
  private doraNorm(s: AdapterState): tf.Tensor1D {
    return detached(() => weightNorm(this.denseWeight(), tf.mul(tf.matMul(s.B, s.A), s.scaling) as tf.Tensor2D));
  }

  /** (x Aᵀ) Bᵀ · scaling: x [..., in] → [..., out]. */
  private loraUpdate(s: AdapterState, x: tf.Tensor): tf.Tensor {
    // matMulLast: plain 2-D products forward and backward (tf.matMul's own gradient takes transposed
    // operands, which tfjs-wasm runs in a scalar loop: a fifth of the main job's LoRA step).
    // Scaled at rank r, not at out: the product saves the small [..., r] input, where tf.mul would keep [..., out].
    const h = matMulLast(x, s.A, true); // [..., r]
    return matMulLast(tf.mul(h, s.scaling), s.B, true); // [..., out]
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
    const dora = [...new Set(rowNames)].filter((n) => this.adapters.get(n)?.magnitude);
    if (dora.length) throw new Error(`${this.path || 'LoRA layer'}: adapter(s) ${dora.join(', ')} use DoRA, which mixed-adapter batches do not support (as in HF PEFT); run them one adapter at a time`);
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
   * (Conv1D, fan_in_fan_out), or `baseLayer.addToWeight(delta)`. DoRA: W ← (m / n) ⊙ (W + scaling·B·A)
   * per output row, n = ‖W + scaling·B·A‖, kept for unmerging (HF's `DoraLinearVariant.merge_unsafe`).
   * No-op when already merged.
   * @throws MergeError when the base cannot take a float update (a quantized layer): dequantize first.
   */
  merge(name: string): void {
    const s = this.state(name);
    if (s.merged) return;
    if (s.magnitude) {
      tf.tidy(() => {
        const w = this.denseWeight();
        const { weight, norm } = doraMergedWeight(w, this.deltaWeight(name), s.magnitude as tf.Tensor1D);
        this.writeWeight(name, weight, w);
        s.mergedNorm = tf.keep(norm);
      });
    } else this.addDelta(name, 1);
    s.merged = true;
  }

  /** Takes a merged adapter out of the base weight again (DoRA: W = W' / (m / n) − scaling·B·A). No-op when not merged. */
  unmerge(name: string): void {
    const s = this.state(name);
    if (!s.merged) return;
    if (s.magnitude) {
      tf.tidy(() => {
        const w = this.denseWeight();
        this.writeWeight(name, doraUnmergedWeight(w, this.deltaWeight(name), s.magnitude as tf.Tensor1D, s.mergedNorm!), w);
      });
      s.mergedNorm!.dispose();
      s.mergedNorm = undefined;
    } else this.addDelta(name, -1);
    s.merged = false;
  }

  /**
   * Replaces the base weight by `next` [out, in] (`current` [out, in] is its present value):
   * assigned for Linear and Conv1D (transposed), else added as `next − current` through `addToWeight`.
   * @throws MergeError when the base cannot take a float update.
   */
  private writeWeight(name: string, next: tf.Tensor2D, current: tf.Tensor2D): void {
    const base = this.baseLayer;
    if (base instanceof Linear) base.weight.assign(next);
    else if (base instanceof Conv1D) base.weight.assign(tf.transpose(next));
    else if (typeof base.addToWeight === 'function') base.addToWeight(tf.sub(next, current) as tf.Tensor2D);
    else throw new MergeError(`cannot merge LoRA adapter "${name}" into ${this.path || 'its base layer'}: the base layer (${base.constructor.name}) stores its weight in a form that cannot take a float update (e.g. 4-bit quantized). Dequantize the model first, then merge; or keep the adapter unmerged.`);
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

  /** The adapters' own parameters (A and B of each, DoRA's m), keyed `lora_A.<adapter>.weight`, `lora_magnitude_vector.<adapter>.weight`. */
  adapterParameters(name?: string): [string, tf.Variable][] {
    const out: [string, tf.Variable][] = [];
    for (const [n, s] of this.adapters) {
      if (name !== undefined && n !== name) continue;
      out.push([`lora_A.${n}.weight`, s.A], [`lora_B.${n}.weight`, s.B]);
      if (s.magnitude) out.push([`lora_magnitude_vector.${n}.weight`, s.magnitude]);
    }
    return out;
  }
}

/** A module holding named parameters directly (HF's `nn.ParameterDict`, as `lora_embedding_A`). */
class ParameterDict extends Module {
  set(name: string, value: tf.Tensor): tf.Variable {
    return this.registerParameter(name, value, true);
  }
}

/** An embedding adapter keeps no more than any LoRA adapter: A [r, vocab], B [dim, r], DoRA's m [dim]. */
type EmbeddingAdapterState = BaseAdapterState;

/**
 * LoRA on a token embedding (HF PEFT's `lora.Embedding`): per adapter A [r, vocab] and B [dim, r]
 * (`lora_embedding_A` / `lora_embedding_B`, plain parameters, not `.weight` modules) and
 *
 *   y = W[ids] + (Aᵀ[ids]) Bᵀ · scaling,   ids [...] → y [..., dim]
 *
 * (HF: `after_A = F.embedding(x, lora_embedding_A.T)`, `result += (after_A @ lora_embedding_B.T) * scaling`).
 * As in HF, the adapter's dropout is not applied to embeddings. DoRA: f = m / ‖W + scaling·(B·A)ᵀ‖
 * per embedding dimension (the norm over the vocabulary, detached), y = f ⊙ (W[ids] + scaling·Aᵀ[ids] Bᵀ)
 * (HF's `DoraEmbeddingLayer`).
 *
 * The base's `weight` [vocab, dim] keeps its name here (`embed_tokens.weight`); a tied output head
 * keeps reading the same variable, so merging changes it too (as in HF PEFT, which warns that the
 * embeddings are no longer tied after merging).
 */
export class LoraEmbedding extends LoraAdapterLayer<EmbeddingAdapterState> {
  readonly numEmbeddings: number;
  readonly dim: number;

  /**
   * @param baseLayer - the embedding to wrap; its `weight` is re-registered here under its own name.
   * @param path - the module's dotted name in the model, for messages.
   */
  constructor(readonly baseLayer: Embedding, path = '') {
    super(path, 'LoRA embedding');
    this.numEmbeddings = baseLayer.numEmbeddings;
    this.dim = baseLayer.dim;
    for (const [name, t] of baseLayer.stateDict()) {
      if (t instanceof tf.Variable) this.registerParameter(name, t, t.trainable);
      else this.registerBuffer(name, t);
    }
    this.registerModule('lora_embedding_A', new ParameterDict());
    this.registerModule('lora_embedding_B', new ParameterDict());
    this.registerModule('lora_magnitude_vector', new Module());
  }

  /** The base table [vocab, dim] (live). */
  get weight(): tf.Variable {
    return this.baseLayer.weight;
  }

  /** An adapter's settings and scaling. */
  adapterInfo(name: string): { r: number; loraAlpha: number; useRslora: boolean; useDora: boolean; scaling: number; enabled: boolean; merged: boolean } {
    const { r, loraAlpha, useRslora, scaling, enabled, merged, magnitude } = this.state(name);
    return { r, loraAlpha, useRslora, useDora: magnitude !== undefined, scaling, enabled, merged };
  }

  /**
   * Adds an adapter, enabled. Initialisation as HF PEFT's `reset_lora_parameters` for embeddings:
   * `true` or `"gaussian"` → A = 0, B ~ N(0, 1); `false` → A, B ~ N(0, 1) (`torch.randn`). With
   * `useDora` the magnitude starts as the norm of the updated table per dimension. Dropout is ignored (as HF).
   * @throws Error when the name is taken or r < 1.
   */
  addAdapter(name: string, spec: LoraAdapterSpec): void {
    if (this.adapters.has(name)) throw new Error(`${this.path || 'LoRA embedding'} already has an adapter named "${name}"`);
    if (!Number.isInteger(spec.r) || spec.r < 1) throw new Error(`${this.path || 'LoRA embedding'}: r must be a positive integer, got ${spec.r}`);
    const A = (this.getSubmodule('lora_embedding_A') as ParameterDict).set(name, spec.init === false ? tf.randomNormal([spec.r, this.numEmbeddings], 0, 1, 'float32', nextSeed()) : tf.zeros([spec.r, this.numEmbeddings]));
    const B = (this.getSubmodule('lora_embedding_B') as ParameterDict).set(name, tf.randomNormal([this.dim, spec.r], 0, 1, 'float32', nextSeed()));
    const scaling = loraScaling(spec.r, spec.loraAlpha, spec.useRslora);
    const s: EmbeddingAdapterState = { r: spec.r, loraAlpha: spec.loraAlpha, useRslora: spec.useRslora, scaling, enabled: true, merged: false, A, B };
    if (spec.useDora) {
      const m = new LoraWeight(tf.tidy(() => weightNorm(this.baseLayer.weight as tf.Tensor2D, this.deltaOf(s), 1)));
      (this.getSubmodule('lora_magnitude_vector') as Module).registerModule(name, m);
      s.magnitude = m.weight;
    }
    this.adapters.set(name, s);
  }

  /** Removes an adapter and disposes its tensors (unmerging first unless `keepMerged`). @returns the number left. */
  deleteAdapter(name: string, opts: { keepMerged?: boolean } = {}): number {
    const s = this.state(name);
    if (s.merged && !opts.keepMerged) this.unmerge(name);
    s.A.dispose();
    s.B.dispose();
    s.magnitude?.dispose();
    s.mergedNorm?.dispose();
    this.adapters.delete(name);
    for (const dict of ['lora_embedding_A', 'lora_embedding_B', 'lora_magnitude_vector']) {
      const old = this.getSubmodule(dict) as Module;
      const next = dict === 'lora_magnitude_vector' ? new Module() : new ParameterDict();
      for (const [n, c] of old.children()) if (n !== name) next.registerModule(n, c);
      if (next instanceof ParameterDict) for (const [n, v] of old.namedParameters()) if (n !== name) next.set(n, v);
      this.registerModule(dict, next);
    }
    return this.adapters.size;
  }

  /** ids [...] (int) → [..., dim]: the base lookup plus every enabled, unmerged adapter (see the class comment). */
  forward(ids: tf.Tensor): tf.Tensor {
    const rowNames = mixedBatchAdapterNames();
    if (rowNames) return this.mixedBatchForward(ids, rowNames);
    return tf.tidy(() => {
      const base = this.baseLayer.forward(ids); // [..., dim]
      let y = base;
      for (const s of this.adapters.values()) {
        if (!s.enabled || s.merged) continue;
        const lora = this.loraUpdate(s, ids);
        y = tf.add(y, s.magnitude ? doraDelta(base, lora, s.magnitude as tf.Tensor1D, this.doraNorm(s)) : lora);
      }
      return y;
    });
  }

  /** Aᵀ[ids] Bᵀ · scaling: ids [...] → [..., dim]. */
  private loraUpdate(s: EmbeddingAdapterState, ids: tf.Tensor): tf.Tensor {
    const h = tf.gather(tf.transpose(s.A), ids.cast('int32').reshape([-1])); // [N, r]
    const d = matMulLast(h, s.B, true); // [N, dim]: plain products both ways (see LoraLayer's loraUpdate)
    return tf.mul(d.reshape([...ids.shape, this.dim]), s.scaling);
  }

  /** ‖W + scaling·(B·A)ᵀ‖ over the vocabulary, per dimension [dim], detached. */
  private doraNorm(s: EmbeddingAdapterState): tf.Tensor1D {
    return detached(() => weightNorm(this.baseLayer.weight as tf.Tensor2D, this.deltaOf(s), 1));
  }

  private deltaOf(s: EmbeddingAdapterState): tf.Tensor2D {
    return tf.tidy(() => tf.mul(tf.transpose(tf.matMul(s.B, s.A)), s.scaling) as tf.Tensor2D);
  }

  /** HF's `lora.Embedding._mixed_batch_forward`: the base once, each adapter's update on its rows. @throws Error with merged or DoRA adapters. */
  private mixedBatchForward(ids: tf.Tensor, rowNames: readonly string[]): tf.Tensor {
    const merged = this.mergedAdapters();
    if (merged.length) throw new Error(`${this.path || 'LoRA embedding'}: cannot run a mixed-adapter batch while adapter(s) ${merged.join(', ')} are merged into the base weights; unmerge them first`);
    const dora = [...new Set(rowNames)].filter((n) => this.adapters.get(n)?.magnitude);
    if (dora.length) throw new Error(`${this.path || 'LoRA embedding'}: adapter(s) ${dora.join(', ')} use DoRA, which mixed-adapter batches do not support (as in HF PEFT); run them one adapter at a time`);
    return tf.tidy(() => {
      const y = this.baseLayer.forward(ids);
      const delta = applyPerRow(ids, rowNames, (name, rows) => {
        const s = name === BASE_ADAPTER_NAME ? undefined : this.adapters.get(name);
        return s ? this.loraUpdate(s, rows) : null;
      }, this.path || 'LoRA embedding');
      return delta ? tf.add(y, delta) : y;
    });
  }

  /** scaling · (B·A)ᵀ [vocab, dim] of one adapter (HF's `Embedding.get_delta_weight`). A new tensor. */
  deltaWeight(name: string): tf.Tensor2D {
    return this.deltaOf(this.state(name));
  }

  /**
   * Folds an adapter into the table: W += scaling·(B·A)ᵀ; DoRA: W ← (m / n) ⊙ (W + scaling·(B·A)ᵀ)
   * per dimension, n kept for unmerging (HF's `DoraEmbeddingVariant.merge_unsafe`). No-op when merged.
   */
  merge(name: string): void {
    const s = this.state(name);
    if (s.merged) return;
    tf.tidy(() => {
      const w = this.baseLayer.weight as tf.Tensor2D;
      if (!s.magnitude) return this.baseLayer.weight.assign(tf.add(w, this.deltaOf(s)));
      const { weight, norm } = doraMergedWeight(w, this.deltaOf(s), s.magnitude as tf.Tensor1D, 1);
      this.baseLayer.weight.assign(weight);
      s.mergedNorm = tf.keep(norm);
    });
    s.merged = true;
  }

  /** Takes a merged adapter out of the table again. No-op when not merged. */
  unmerge(name: string): void {
    const s = this.state(name);
    if (!s.merged) return;
    tf.tidy(() => {
      const w = this.baseLayer.weight as tf.Tensor2D;
      if (!s.magnitude) return this.baseLayer.weight.assign(tf.sub(w, this.deltaOf(s)));
      this.baseLayer.weight.assign(doraUnmergedWeight(w, this.deltaOf(s), s.magnitude as tf.Tensor1D, s.mergedNorm!, 1));
    });
    s.mergedNorm?.dispose();
    s.mergedNorm = undefined;
    s.merged = false;
  }

  /** The adapters' parameters, keyed as HF's module tree: `lora_embedding_A.<adapter>`, `lora_embedding_B.<adapter>`, `lora_magnitude_vector.<adapter>.weight`. */
  adapterParameters(name?: string): [string, tf.Variable][] {
    const out: [string, tf.Variable][] = [];
    for (const [n, s] of this.adapters) {
      if (name !== undefined && n !== name) continue;
      out.push([`lora_embedding_A.${n}`, s.A], [`lora_embedding_B.${n}`, s.B]);
      if (s.magnitude) out.push([`lora_magnitude_vector.${n}.weight`, s.magnitude]);
    }
    return out;
  }
}
