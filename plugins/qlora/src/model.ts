/**
 * QLoRA (Dettmers et al. 2023, arXiv:2305.14314): LoRA on a base whose linear layers are stored in
 * 4 bits. As torchtune and HF PEFT build it, QLoRA is LoRA with the base quantized: the `quantize`
 * step turns the base's linear layers into {@link QuantLinear}s, and {@link injectQLora} runs
 * `@peftkit/lora`'s own injection on them (LoRA's math is not repeated here). Adapters stay float32;
 * they save as plain HF PEFT LoRA adapters (`peft_type: "LORA"`), as HF PEFT saves QLoRA adapters.
 *
 * Merging is where QLoRA differs: a float update cannot be added to 4-bit codes. `merge()` holds a
 * float32 copy of each quantized base while merged (exactly undone by `unmerge()`), and
 * `mergeAndUnload()` produces a float32 model (or, on request, re-quantizes the merged layers).
 */
import * as tf from '@tensorflow/tfjs';
import { UserError, type StepLogger } from '@peftkit/core';
import type { AdapterHandle, Module } from '@peftkit/models';
import { injectLora, loraConfigSchema, type LoraAdapterHandle, type LoraConfig, type LoraTargetModel, type ParameterReport } from '@peftkit/lora';
import type { QLoraConfig } from './config.generated.js';
import qloraSchema from './config.schema.json' with { type: 'json' };
import { QuantLinear, quantizeLayer } from './quant-linear.js';
import { dequantizeModel, quantizedLayers } from './quantize-model.js';
import type { QuantType4bit } from './quant/four-bit.js';

export type { QLoraConfig };

/** The QLoRA recipe's defaults that differ from LoRA's: r 64, lora_alpha 16, lora_dropout 0.1, all linear layers. */
export const QLORA_DEFAULTS: Readonly<Pick<LoraConfig, 'r' | 'lora_alpha' | 'lora_dropout' | 'target_modules'>> = Object.freeze(
  Object.fromEntries(Object.entries(qloraSchema.properties).map(([k, p]) => [k, (p as { default: unknown }).default])),
);

/**
 * The JSON Schema of the `qlora` config: LoRA's (`@peftkit/lora`), with the QLoRA defaults and
 * their descriptions from config.schema.json.
 */
export const qloraConfigSchema: Record<string, any> = (() => {
  const s = structuredClone(loraConfigSchema) as Record<string, any>;
  s.title = qloraSchema.title;
  s.description = qloraSchema.description;
  for (const [k, p] of Object.entries(qloraSchema.properties)) s.properties[k] = { ...s.properties[k], default: (p as { default: unknown }).default, description: (p as { description: string }).description };
  return s;
})();

/** `config` with the QLoRA defaults under it (a new object). */
export function withQLoraDefaults(config: QLoraConfig = {}): LoraConfig {
  const out: Record<string, unknown> = { ...structuredClone(QLORA_DEFAULTS) };
  for (const [k, v] of Object.entries(config ?? {})) if (v !== undefined) out[k] = structuredClone(v);
  return out as LoraConfig;
}

/** Options of {@link injectQLora}: LoRA's. */
export interface InjectQLoraOptions {
  adapterName?: string;
  logger?: StepLogger;
  seed?: number;
}

/**
 * Injects a QLoRA adapter: LoRA (with the QLoRA defaults) on a model whose linear layers were
 * quantized by the `quantize` step. Every LoRA layer then wraps a {@link QuantLinear} (or a float
 * layer the quantization left alone, such as a head listed in `modules_to_not_convert`).
 * @throws UserError when the model has no quantized layer (add a quantize step), when `use_dora`
 *   is set (DoRA's norm needs the dequantized weight at every step and its merge rewrites the
 *   whole weight, which QLoRA's merging does not do), and LoRA's errors (invalid config, nothing matched).
 */
export function injectQLora(model: LoraTargetModel, config: QLoraConfig = {}, opts: InjectQLoraOptions = {}): QLoraAdapterHandle {
  if (config?.use_dora) {
    throw new UserError('qlora: use_dora is not supported on a quantized base (DoRA needs the dequantized weight for its norm at every step, and merging rescales the whole weight)', {
      pointer: '/use_dora',
      hint: 'set use_dora to false, or use method "lora" with use_dora on a full-precision base (no quantize step)',
    });
  }
  if (!quantizedLayers(model).length) {
    throw new UserError('QLoRA needs a quantized base, but the model has no quantized linear layer', {
      hint: 'put a quantize step (quant_type "nf4") between load and inject, or use method "lora" for a full-precision base',
    });
  }
  const lora = injectLora(model, withQLoraDefaults(config), opts);
  const onQuantized = [...lora.layers.values()].filter((l) => l.baseLayer instanceof QuantLinear).length;
  opts.logger?.info(`qlora: LoRA on ${lora.layers.size} layers (${onQuantized} with a quantized base), adapters in float32`);
  return new QLoraAdapterHandle(lora);
}

/** Options of {@link QLoraAdapterHandle.mergeAndUnload}. */
export interface QLoraMergeOptions {
  /**
   * `float32` (default): the merged layers, and every other quantized layer, become float32
   * `Linear` / `Conv1D` modules. `requantize`: the merged layers are quantized again with their
   * original settings (the LoRA update is then rounded to the 4-bit grid) and the other quantized
   * layers stay as they are.
   */
  target?: 'float32' | 'requantize';
}

/**
 * A QLoRA adapter: a LoRA adapter (its tensors, saving, loading and enabling are LoRA's) on a
 * quantized base, with merging that never writes a float update into packed storage.
 */
export class QLoraAdapterHandle implements AdapterHandle {
  readonly method = 'qlora';
  readonly peftType = 'LORA';
  /** Quantized bases holding a float32 copy while merged. */
  private materialized: QuantLinear[] = [];

  constructor(readonly lora: LoraAdapterHandle) {}

  get name(): string {
    return this.lora.name;
  }
  set name(v: string) {
    if (v !== this.lora.name) throw new Error(`cannot rename QLoRA adapter "${this.lora.name}" to "${v}" after injection; inject with that adapter name`);
  }
  get config(): Record<string, unknown> {
    return this.lora.config;
  }
  get warnings(): string[] {
    return this.lora.warnings;
  }
  trainableParameters(): [string, tf.Variable][] {
    return this.lora.trainableParameters();
  }
  stateDict(): Map<string, tf.Tensor> {
    return this.lora.stateDict();
  }
  loadStateDict(sd: Map<string, tf.Tensor>): void {
    this.lora.loadStateDict(sd);
  }
  /** HF PEFT's adapter_config.json: a LoRA config (`peft_type: "LORA"`), as HF PEFT writes for QLoRA. */
  adapterConfig(): Record<string, unknown> {
    return this.lora.adapterConfig();
  }
  setEnabled(enabled: boolean): void {
    if (!enabled && this.materialized.length) this.unmerge();
    this.lora.setEnabled(enabled);
  }

  private quantizedBases(): [string, QuantLinear][] {
    return [...this.lora.layers].filter(([, l]) => l.baseLayer instanceof QuantLinear).map(([p, l]) => [p, l.baseLayer as QuantLinear]);
  }

  /**
   * Merges the adapter for inference: each quantized base gets a float32 copy (dequantized) into
   * which LoRA merges `scaling · B·A`; the packed weight is not touched. Memory: one float32 weight
   * per merged layer while merged.
   */
  merge(): void {
    if (this.materialized.length) return;
    const bases = this.quantizedBases().map(([, q]) => q);
    for (const q of bases) q.materialize();
    this.materialized = bases;
    try {
      this.lora.merge();
    } catch (e) {
      this.dematerialize();
      throw e;
    }
  }

  /** Undoes {@link QLoraAdapterHandle.merge}: the quantized bases are exactly what they were (their float copies are dropped). */
  unmerge(): void {
    this.lora.unmerge();
    this.dematerialize();
  }

  private dematerialize(): void {
    for (const q of this.materialized) q.dematerialize();
    this.materialized = [];
  }

  /**
   * HF PEFT's `merge_and_unload()` for a quantized base: dequantizes each wrapped base to float32,
   * merges the LoRA update in float32 (LoRA's merge), removes the adapter, and returns the model with
   * float32 `Linear` / `Conv1D` layers, or with the merged layers re-quantized (`target: "requantize"`,
   * logged as a warning: re-quantizing rounds the update to the 4-bit grid, and a small update can
   * vanish). The handle is unusable afterwards.
   * @throws UserError when a merged layer also carries another adapter (unload that one first), or
   *   when `target` is not one of the two choices.
   */
  mergeAndUnload(opts: QLoraMergeOptions = {}, logger?: StepLogger): LoraTargetModel {
    const target = opts.target ?? 'float32';
    if (target !== 'float32' && target !== 'requantize') {
      throw new UserError(`merge target "${String(target)}" is not supported: merging into a quantized base produces a float32 model ("float32") or re-quantizes it ("requantize")`, { hint: 'never add a float update into 4-bit storage: choose "float32" or "requantize"' });
    }
    const model = this.lora.model;
    for (const [path, layer] of this.lora.layers) {
      const others = layer.adapterNames().filter((n) => n !== this.name);
      if (others.length) throw new UserError(`${path} also carries adapter(s) ${others.join(', ')}: merging "${this.name}" into its quantized base would leave them on a float32 copy`, { hint: 'unload the other adapters first' });
    }
    const bases = this.quantizedBases();
    if (!this.materialized.length) for (const [, q] of bases) q.materialize();
    this.materialized = [];
    this.lora.mergeAndUnload(); // LoRA's merge: W_float += scaling·B·A through QuantLinear.addToWeight
    const merged: string[] = [];
    for (const [path, q] of bases) {
      if (model.getSubmodule(path) !== q) continue;
      const float = q.toFloatModule(); // from the merged float copy
      float.training = q.training;
      if (target === 'requantize') {
        const d = q.weight.describe();
        const re = quantizeLayer(float, { quantType: q.quantType, blocksize: (d.blocksize as number | undefined) ?? 64, doubleQuant: (d.double_quant as boolean | undefined) ?? true }, path);
        model.setSubmodule(path, re);
      } else {
        model.setSubmodule(path, float);
      }
      q.dispose();
      merged.push(path);
    }
    if (target === 'requantize') {
      logger?.warn(`re-quantized ${merged.length} merged layers to ${bases[0]?.[1].quantType ?? 'nf4'}: the LoRA update is rounded to the quantization grid (an update smaller than half a code gap disappears); keep "float32" for an exact merge`);
    } else {
      const rest = dequantizeModel(model as Module);
      logger?.info(`merged into ${merged.length} layers in float32; dequantized ${rest.length} other quantized layers`);
    }
    return model;
  }

  /**
   * Trainable and total parameters, counting each quantized weight's elements (HF PEFT's
   * `print_trainable_parameters` counts 4-bit weights the same way), not its packed bytes.
   */
  parameterReport(): ParameterReport {
    const r = this.lora.parameterReport();
    const quantized = quantizedLayers(this.lora.model).reduce((s, [, q]) => s + q.weight.shape[0] * q.weight.shape[1], 0);
    const total = r.total + quantized;
    return { trainable: r.trainable, total, percent: total ? (100 * r.trainable) / total : 0 };
  }

  dispose(): void {
    this.dematerialize();
    this.lora.dispose();
  }
}

/** The quantization type of a model's quantized layers, when they share one. */
export function baseQuantType(model: Module): QuantType4bit | 'int8' | undefined {
  const types = new Set(quantizedLayers(model).map(([, q]) => q.quantType));
  return types.size === 1 ? [...types][0] : undefined;
}
