import type * as tf from '@tensorflow/tfjs';
import type { LoadedModel, ModelInputs, ModelOutput } from '../model.js';

/**
 * What a PEFT method's `inject` returns: its handle on one named adapter injected into a model.
 *
 * Adapter-layer methods (LoRA, bottleneck adapters) wrap modules of the model in place and
 * implement `setEnabled` / `merge` / `unmerge`. Prompt-learning methods leave the model alone and
 * implement `prepareInputs` / `postprocessOutput`.
 */
export interface AdapterHandle {
  /** The adapter's name (`default` unless given). */
  name: string;
  /** The method's registered name (`lora`, `full`, ...). */
  method: string;
  /** HF PEFT's `peft_type`, or null when the adapter has no HF PEFT form. */
  peftType: string | null;
  /** The method's config as given, defaults applied. */
  config: Record<string, unknown>;
  /** The parameters training updates, keyed as in the saved adapter. */
  trainableParameters(): [string, tf.Variable][];
  /**
   * The tensors to save, keyed exactly as in HF PEFT's `adapter_model.safetensors`
   * (`base_model.model.transformer.h.0.attn.c_attn.lora_A.weight`). Live tensors: do not dispose.
   */
  stateDict(): Map<string, tf.Tensor>;
  /**
   * Loads tensors saved by {@link AdapterHandle.stateDict} (or by HF PEFT); keys may lack `base_model.model.`.
   * @throws Error naming missing or wrongly shaped tensors.
   */
  loadStateDict(sd: Map<string, tf.Tensor>): void;
  /** The content of `adapter_config.json` (HF PEFT's field names), without `base_model_name_or_path`. */
  adapterConfig(): Record<string, unknown>;
  /** Turns the adapter's effect on or off (off: the base model's outputs). */
  setEnabled(enabled: boolean): void;
  /** Folds the adapter into the base weights (adapter-layer methods). */
  merge?(): void;
  /** Undoes {@link AdapterHandle.merge}. */
  unmerge?(): void;
  /** Prompt learning: adds virtual tokens or prefixes to the inputs. */
  prepareInputs?(inputs: ModelInputs): ModelInputs;
  /** Prompt learning: removes the virtual positions from the outputs, so callers see [batch, seq, ...]. */
  postprocessOutput?(output: ModelOutput, inputs: ModelInputs): ModelOutput;
  /** Frees the adapter's own tensors. */
  dispose(): void;
}

/**
 * A base model with one or more named adapters: what flows through a `peft-model` port.
 * The base is shared, never copied.
 */
export class PeftModel {
  readonly adapters = new Map<string, AdapterHandle>();
  /** The adapter(s) used by {@link PeftModel.forward}. */
  active: string[] = [];
  constructor(readonly base: LoadedModel) {}

  /** Adds an injected adapter and makes it the active one. */
  addAdapter(handle: AdapterHandle): void {
    if (this.adapters.has(handle.name)) throw new Error(`an adapter named "${handle.name}" is already loaded`);
    this.adapters.set(handle.name, handle);
    this.setActive([handle.name]);
  }

  /** Enables exactly the named adapters (none: the base model). */
  setActive(names: string[]): void {
    for (const n of names) if (!this.adapters.has(n)) throw new Error(`no adapter named "${n}"; loaded: ${[...this.adapters.keys()].join(', ') || 'none'}`);
    for (const [n, h] of this.adapters) h.setEnabled(names.includes(n));
    this.active = [...names];
  }

  /** The active adapter, when exactly one is. */
  get activeAdapter(): AdapterHandle | undefined {
    return this.active.length === 1 ? this.adapters.get(this.active[0]) : undefined;
  }

  /**
   * Runs the model with the active adapters; prompt-learning adapters prepare the inputs and strip
   * their virtual positions from the outputs.
   */
  forward(inputs: ModelInputs): ModelOutput {
    const prompt = this.active.map((n) => this.adapters.get(n)!).filter((h) => h.prepareInputs);
    let x = inputs;
    for (const h of prompt) x = h.prepareInputs!(x);
    let out = this.base.model.forward(x);
    for (const h of prompt.reverse()) out = h.postprocessOutput ? h.postprocessOutput(out, inputs) : out;
    return out;
  }

  /** Runs `fn` with every adapter disabled (the base model's behaviour), then restores the active set. */
  withAdaptersDisabled<T>(fn: () => T): T {
    const saved = this.active;
    this.setActive([]);
    try {
      return fn();
    } finally {
      this.setActive(saved);
    }
  }

  /** Trainable parameters of the active adapters. */
  trainableParameters(): [string, tf.Variable][] {
    return this.active.flatMap((n) => this.adapters.get(n)!.trainableParameters());
  }

  /** Trainable and total parameter counts (elements), the base counted once. */
  parameterReport(): { trainable: number; total: number; percent: number } {
    const baseParams = this.base.model.namedParameters();
    const seen = new Set(baseParams.map(([, v]) => v));
    let total = baseParams.reduce((s, [, v]) => s + v.size, 0);
    let trainable = 0;
    for (const [, v] of this.trainableParameters()) {
      trainable += v.size;
      if (!seen.has(v)) total += v.size;
    }
    return { trainable, total, percent: (100 * trainable) / total };
  }
}
