/**
 * `modules_to_save`: modules trained in full beside the adapter (typically a new classification
 * head), as HF PEFT's `ModulesToSaveWrapper` (`peft/utils/other.py`): the original module stays,
 * frozen, and each adapter gets its own trainable copy; the forward pass uses the copy of the active
 * adapter, or the original when none is active.
 *
 * Names: the original's parameters keep their names (`score.weight`); the copies live at
 * `score.modules_to_save.<adapter>.weight` in the module tree and are saved under the original's
 * name (`base_model.model.score.weight`), as HF PEFT saves them.
 *
 * Nothing here is specific to LoRA: every adapter-layer method of HF PEFT has `modules_to_save`, and
 * the bottleneck adapters train a sequence classifier's head the same way (AdapterHub's prediction head).
 */
import * as tf from '@tensorflow/tfjs';
import { UserError } from '@peftkit/core';
import { Conv1D, Embedding, LayerNorm, Linear, RMSNorm } from '../nn/layers.js';
import { Module } from '../nn/module.js';
import { TiedLinear } from '../architectures/shared.js';
import { BASE_ADAPTER_NAME, applyPerRow, mixedBatchAdapterNames } from './mixed-batch.js';

/**
 * A trainable copy of a layer with its own (new) variables holding the same values.
 * Handles the layers of `@peftkit/models`' nn (Linear, Conv1D, Embedding, LayerNorm, RMSNorm), an
 * output head tied to the embedding (`TiedLinear`: the copy is an untied `Linear` without bias, as
 * HF's `deepcopy` of a tied `lm_head` owns its weight) and any module with a `clone(): Module` method.
 * @throws UserError for another kind of module, naming it.
 */
export function cloneModule(m: Module, path = ''): Module {
  let copy: Module;
  if (m instanceof Linear) copy = new Linear(m.inFeatures, m.outFeatures, m.bias !== undefined);
  else if (m instanceof TiedLinear) copy = new Linear(m.inFeatures, m.outFeatures, false);
  else if (m instanceof Conv1D) copy = new Conv1D(m.inFeatures, m.outFeatures);
  else if (m instanceof Embedding) copy = new Embedding(m.numEmbeddings, m.dim);
  else if (m instanceof LayerNorm) copy = new LayerNorm(m.dim, m.eps);
  else if (m instanceof RMSNorm) copy = new RMSNorm(m.dim, m.eps);
  else if (typeof (m as { clone?: unknown }).clone === 'function') return (m as unknown as { clone(): Module }).clone();
  else {
    throw new UserError(`modules_to_save: cannot copy ${path || 'the module'} (${m.constructor.name}); peftkit can copy Linear, Conv1D, Embedding, LayerNorm and RMSNorm layers`, {
      pointer: '/modules_to_save',
      hint: 'list the layers inside it (e.g. "score" rather than its parent) or remove it from modules_to_save',
    });
  }
  const src = m.stateDict();
  for (const [name, v] of copy.namedParameters()) v.assign(src.get(name)!);
  return copy;
}

/** A module replaced by a frozen original plus one trainable copy per adapter (HF's `ModulesToSaveWrapper`). */
export class ModulesToSaveWrapper extends Module {
  /** Runs each row through its own adapter's copy inside a mixed batch (see `@peftkit/models`' mixed-batch.ts). */
  readonly supportsMixedBatch = true as const;
  private readonly enabled: string[] = [];

  /**
   * @param originalModule - the module being wrapped; its parameters are re-registered here under
   *   their own names, so the model's state-dict names do not change.
   * @param path - its dotted name in the model, for messages.
   */
  constructor(readonly originalModule: Module, readonly path = '') {
    super();
    for (const [name, t] of originalModule.stateDict()) {
      if (t instanceof tf.Variable) this.registerParameter(name, t, t.trainable);
      else this.registerBuffer(name, t);
    }
    this.registerModule('modules_to_save', new Module());
    // Model code reads sizes off its layers (`inFeatures`, `numEmbeddings`, `eps`): mirror them.
    for (const [k, v] of Object.entries(originalModule)) {
      if (['number', 'string', 'boolean'].includes(typeof v) && !(k in this)) (this as Record<string, unknown>)[k] = v;
    }
  }

  private get dict(): Module {
    return this.getSubmodule('modules_to_save')!;
  }

  /** Names of the adapters with a copy here. */
  adapterNames(): string[] {
    return this.dict.children().map(([n]) => n);
  }

  /** The adapter's copy, or undefined. */
  copyOf(name: string): Module | undefined {
    return this.dict.getSubmodule(name);
  }

  /** The adapter whose copy the forward pass uses (the last enabled one), or null for the original. */
  get activeAdapter(): string | null {
    return this.enabled.length ? this.enabled[this.enabled.length - 1] : null;
  }

  /** The module the forward pass runs now. */
  activeModule(): Module {
    const a = this.activeAdapter;
    return a ? this.copyOf(a)! : this.originalModule;
  }

  /** Adds a trainable copy for `name` and makes it active. */
  addAdapter(name: string): Module {
    if (this.copyOf(name)) throw new Error(`${this.path}: modules_to_save already has a copy for adapter "${name}"`);
    const copy = cloneModule(this.originalModule, this.path);
    copy.requiresGrad(true);
    copy.training = this.training;
    this.dict.registerModule(name, copy);
    this.setEnabled(name, true);
    return copy;
  }

  /** Disposes the adapter's copy. @returns the number of copies left. */
  deleteAdapter(name: string): number {
    const copy = this.copyOf(name);
    if (!copy) return this.adapterNames().length;
    this.setEnabled(name, false);
    const next = new Module();
    for (const [n, c] of this.dict.children()) if (n !== name) next.registerModule(n, c);
    this.registerModule('modules_to_save', next);
    copy.dispose();
    return this.adapterNames().length;
  }

  /** Uses (or stops using) the adapter's copy; the last enabled adapter wins. */
  setEnabled(name: string, on: boolean): void {
    const i = this.enabled.indexOf(name);
    if (i >= 0) this.enabled.splice(i, 1);
    if (on) this.enabled.push(name);
  }

  /**
   * Runs the active copy (or the original) with the same arguments. Inside a mixed batch the first
   * argument's rows (x [B, ...]) go through the copy of the adapter named for them, or the original
   * for `__base__` and adapters without a copy here (HF PEFT's `ModulesToSaveWrapper._mixed_batch_forward`).
   */
  forward(...args: unknown[]): unknown {
    const rowNames = mixedBatchAdapterNames();
    const run = (m: Module, a: unknown[]) => (m as unknown as { forward(...a: unknown[]): unknown }).forward(...a);
    if (!rowNames || !(args[0] instanceof tf.Tensor)) return run(this.activeModule(), args);
    const [x, ...rest] = args as [tf.Tensor, ...unknown[]];
    return applyPerRow(x, rowNames, (name, rows) => {
      const m = (name !== BASE_ADAPTER_NAME && this.copyOf(name)) || this.originalModule;
      return run(m, [rows, ...rest]) as tf.Tensor;
    }, this.path || 'modules_to_save');
  }

  /** The active module's weight (what model code reading `layer.weight` should see). */
  get weight(): tf.Variable | undefined {
    return this.activeModule().parameter('weight');
  }

  get bias(): tf.Variable | undefined {
    return this.activeModule().parameter('bias');
  }
}
