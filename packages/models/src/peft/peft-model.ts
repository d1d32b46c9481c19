import type * as tf from '@tensorflow/tfjs';
import type { PromptFormat } from './prompt-format.js';
import { UserError } from '@peftkit/core';
import type { LinearHead, LoadedModel, ModelInputs, ModelOutput } from '../model.js';
import { BASE_ADAPTER_NAME, isMixedBatchModule, withMixedBatch } from './mixed-batch.js';

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
  /** The prompt format it was trained with (set by the train step, read from `prompt_format.json`). */
  promptFormat?: PromptFormat;
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
  /**
   * Writes the adapter into `dir` in the method's own format, for methods without an HF PEFT form
   * (`peftType` null; e.g. AdapterHub's `adapter_config.json` + `adapter.safetensors` for bottleneck
   * adapters). Absent: the exporter writes HF PEFT's files from `stateDict()` and `adapterConfig()`.
   * @returns the names of the files written
   */
  save?(dir: string, options?: { baseModelNameOrPath?: string | null }): string[];
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
  /**
   * True when, while enabled, the model's output carries `leadingLogits` (prompt tuning of a causal
   * LM): the first input token is then a target of the causal-LM loss too, as in HF PEFT.
   */
  predictsFirstToken?(): boolean;
  /**
   * Trainable and total parameter counts when the model's own parameters do not tell them (a
   * quantized base keeps its weights packed, outside tfjs variables); absent: counted from the model.
   */
  parameterReport?(): { trainable: number; total: number; percent: number };
  /** Frees the adapter's own tensors. */
  dispose(): void;
  /**
   * Called on `adapters[0]` (this handle): builds a new adapter named `adapterName` in the same
   * model from `adapters` (all of this method) weighted by `weights`, as HF PEFT's
   * `add_weighted_adapter`; the new adapter is returned disabled. Methods that cannot combine
   * adapters leave this out. See {@link PeftModel.addWeightedAdapter}.
   * @throws UserError for unsupported combinations (naming what differs).
   */
  addWeightedAdapter?(adapters: AdapterHandle[], weights: number[], adapterName: string, combinationType: string): AdapterHandle;
}

/** Options of {@link PeftModel.forward}. */
export interface PeftForwardOptions {
  /**
   * One adapter name per batch row (HF PEFT's `adapter_names`): each row is computed with its own
   * adapter in the same forward pass, whatever is active; `__base__` ({@link BASE_ADAPTER_NAME})
   * for the base model. Only adapters whose layers support it (LoRA, QLoRA, their
   * `modules_to_save`); inference only.
   */
  adapterNames?: string[];
}

/** One line of {@link PeftModel.listAdapters}. */
export interface AdapterSummary {
  name: string;
  method: string;
  peftType: string | null;
  active: boolean;
  /** Elements in the adapter's own tensors (its state dict). */
  numParameters: number;
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
   * their virtual positions from the outputs. With `opts.adapterNames`, each row uses the adapter
   * named for it instead (see {@link PeftModel.mixedBatchForward}).
   */
  forward(inputs: ModelInputs, opts: PeftForwardOptions = {}): ModelOutput {
    if (opts.adapterNames) return this.mixedBatchForward(inputs, opts.adapterNames);
    const prompt = this.active.map((n) => this.adapters.get(n)!).filter((h) => h.prepareInputs);
    let x = inputs;
    for (const h of prompt) x = h.prepareInputs!(x);
    let out = this.base.model.forward(x);
    for (const h of prompt.reverse()) out = h.postprocessOutput ? h.postprocessOutput(out, inputs) : out;
    return out;
  }

  /**
   * {@link PeftModel.forward} without the output head: the final hidden states [batch, seq, hidden]
   * as `logits` and `lastHiddenState` (see `PreTrainedModel.forwardHidden`), with the active
   * adapters applied and prompt-learning positions stripped. Only when {@link PeftModel.outputHead}
   * is defined.
   * @throws Error when it is not (the head is wrapped, the model has none, or an active adapter
   *   predicts the first token from a virtual position, whose logits only `forward` gives).
   */
  forwardHidden(inputs: ModelInputs): ModelOutput {
    if (!this.outputHead()) throw new Error('forwardHidden: the model\'s output head is not a plain linear map under the active adapters (outputHead() is undefined); use forward');
    const prompt = this.active.map((n) => this.adapters.get(n)!).filter((h) => h.prepareInputs);
    let x = inputs;
    for (const h of prompt) x = h.prepareInputs!(x);
    let out = this.base.model.forwardHidden(x);
    for (const h of prompt.reverse()) out = h.postprocessOutput ? h.postprocessOutput(out, inputs) : out;
    return out;
  }

  /**
   * The base model's output head when it is a plain linear map that no active adapter wraps or
   * reads around (`PreTrainedModel.outputHead`): then the loss may run the head itself, in chunks,
   * over {@link PeftModel.forwardHidden}. Undefined when an active adapter predicts the first token
   * (prompt tuning of a causal LM: its loss needs the logits of the last virtual position).
   */
  outputHead(): LinearHead | undefined {
    return this.predictsFirstToken() ? undefined : this.base.model.outputHead();
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

  /**
   * Whether the causal-LM loss has a target at position 0 (an active adapter predicts the first
   * token from virtual tokens, see {@link AdapterHandle.predictsFirstToken}).
   */
  predictsFirstToken(): boolean {
    return this.active.some((n) => this.adapters.get(n)!.predictsFirstToken?.() ?? false);
  }

  /** Trainable parameters of the active adapters (those whose `trainable` flag is on: a frozen adapter has none). */
  trainableParameters(): [string, tf.Variable][] {
    return this.active.flatMap((n) => this.adapters.get(n)!.trainableParameters()).filter(([, v]) => v.trainable);
  }

  /**
   * A mixed-adapter batch (HF PEFT's `forward(..., adapter_names=...)`): row i of the batch is
   * computed with adapter `adapterNames[i]` (`__base__`: none), in one forward pass over the
   * shared base; the active set is ignored. LoRA layers group the rows by adapter (HF's
   * `_mixed_batch_forward`), so each row gets exactly what running its adapter alone gives.
   * @throws UserError when the model is in training mode, the number of names is not the batch
   *   size, a name is not loaded (HF: "Trying to infer with non-existing adapter(s)"), a named or
   *   active adapter's method has no per-row support (prompt learning, bottleneck adapters), or
   *   (from the layers) an adapter is merged.
   */
  mixedBatchForward(inputs: ModelInputs, adapterNames: string[]): ModelOutput {
    if (this.base.model.training) throw new UserError('per-row adapters (adapterNames) work in evaluation mode only, as in HF PEFT', { hint: 'call model.eval() first' });
    const rows = (inputs.inputIds ?? inputs.inputsEmbeds)?.shape[0];
    if (rows !== undefined && rows !== adapterNames.length) {
      throw new UserError(`adapterNames has ${adapterNames.length} entries but the batch has ${rows} rows`, { hint: `give one adapter name per row (${BASE_ADAPTER_NAME} for the base model)` });
    }
    const unknown = [...new Set(adapterNames)].filter((n) => n !== BASE_ADAPTER_NAME && !this.adapters.has(n)).sort();
    if (unknown.length) {
      throw new UserError(`trying to infer with non-existing adapter(s): ${unknown.join(', ')}`, { hint: `loaded: ${[...this.adapters.keys()].join(', ') || 'none'}; ${BASE_ADAPTER_NAME} means the base model` });
    }
    const capable = this.mixedBatchAdapters();
    const named = [...new Set(adapterNames)].filter((n) => n !== BASE_ADAPTER_NAME);
    const unsupported = [...new Set([...named, ...this.active])].filter((n) => !capable.has(n));
    if (unsupported.length) {
      const what = unsupported.map((n) => `${n} (${this.adapters.get(n)!.method})`).join(', ');
      throw new UserError(`per-row adapters (adapterNames) need adapters whose layers support them (LoRA, QLoRA); not: ${what}`, {
        hint: named.some((n) => !capable.has(n)) ? 'run those adapters in batches of their own (setActive)' : 'deactivate those adapters (setActive) before a mixed batch',
      });
    }
    return withMixedBatch(adapterNames, () => this.base.model.forward(inputs));
  }

  /** Names of the adapters held by modules that compute per-row adapters (LoRA layers, modules_to_save wrappers). */
  mixedBatchAdapters(): Set<string> {
    const out = new Set<string>();
    for (const [, m] of this.base.model.namedModules()) if (isMixedBatchModule(m)) for (const n of m.adapterNames()) out.add(n);
    return out;
  }

  /**
   * Turns every adapter off (the base model's outputs) and returns the names that were active, for
   * a later {@link PeftModel.setActive}.
   */
  disableAdapters(): string[] {
    const was = [...this.active];
    this.setActive([]);
    return was;
  }

  /**
   * Removes an adapter from the model and frees its tensors (HF PEFT's `delete_adapter`): wrapped
   * layers that no adapter uses any more get their original module back. The other active
   * adapters stay active; unlike HF PEFT, no other adapter is activated in its place.
   * @throws UserError when no adapter has that name.
   */
  deleteAdapter(name: string): void {
    const h = this.adapters.get(name);
    if (!h) throw new UserError(`no adapter named "${name}" to delete; loaded: ${[...this.adapters.keys()].join(', ') || 'none'}`);
    h.dispose();
    this.adapters.delete(name);
    this.active = this.active.filter((n) => n !== name);
  }

  /**
   * Builds a new adapter `adapterName` from loaded ones, as HF PEFT's `add_weighted_adapter`
   * (`peft/tuners/lora/model.py`); the method does the math (for LoRA: `linear`, `cat`). The new
   * adapter is added but not activated (call {@link PeftModel.setActive}), as in HF PEFT.
   * @throws UserError when a name is unknown or taken, weights and adapters differ in number, the
   *   adapters are of different methods, or the method cannot combine adapters.
   */
  addWeightedAdapter(adapters: string[], weights: number[], adapterName: string, combinationType: string): AdapterHandle {
    if (!adapters.length) throw new UserError('addWeightedAdapter: give at least one adapter');
    if (adapters.length !== weights.length) throw new UserError(`addWeightedAdapter: ${adapters.length} adapters but ${weights.length} weights; give one weight per adapter`);
    if (this.adapters.has(adapterName) || adapterName === BASE_ADAPTER_NAME) throw new UserError(`addWeightedAdapter: the name "${adapterName}" is taken; give the new adapter another name`);
    const handles = adapters.map((n) => {
      const h = this.adapters.get(n);
      if (!h) throw new UserError(`addWeightedAdapter: no adapter named "${n}"; loaded: ${[...this.adapters.keys()].join(', ') || 'none'}`);
      return h;
    });
    const methods = [...new Set(handles.map((h) => h.method))];
    if (methods.length > 1) throw new UserError(`addWeightedAdapter: the adapters are of different methods (${methods.join(', ')}); combine adapters of one method`);
    if (!handles[0].addWeightedAdapter) throw new UserError(`addWeightedAdapter: the "${methods[0]}" method cannot combine adapters`);
    const h = handles[0].addWeightedAdapter(handles, weights, adapterName, combinationType);
    this.adapters.set(adapterName, h);
    h.setEnabled(this.active.includes(adapterName));
    return h;
  }

  /** The loaded adapters, in loading order. */
  listAdapters(): AdapterSummary[] {
    return [...this.adapters.values()].map((h) => ({
      name: h.name,
      method: h.method,
      peftType: h.peftType,
      active: this.active.includes(h.name),
      numParameters: [...h.stateDict().values()].reduce((s, t) => s + t.size, 0),
    }));
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
