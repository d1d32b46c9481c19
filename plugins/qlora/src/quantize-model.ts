/**
 * Quantizing a model's linear layers in place (transformers' `replace_with_bnb_linear` followed by
 * bitsandbytes' quantization of each weight), and the way back to float32.
 */
import * as tf from '@tensorflow/tfjs';
import { UserError, type StepLogger } from '@peftkit/core';
import { Conv1D, Linear, createModel, type ModelConfig, type ModelTask, type Module, type PreTrainedModel } from '@peftkit/models';
import type { QuantConfig } from './quant-config.generated.js';
import schema from './quant-config.schema.json' with { type: 'json' };
import { assertBlocksize } from './quant/four-bit.js';
import { QuantLinear, quantizeLayer } from './quant-linear.js';
import { bitsPerParameter, type QuantizedWeight } from './quantized-weight.js';

/** {@link QuantConfig} with every default filled in. */
export type ResolvedQuantConfig = Required<QuantConfig>;

/** The schema of {@link QuantConfig}. */
export const quantConfigSchema = schema;

/** A model as quantization sees it: a module tree, with output heads when it is a `PreTrainedModel`. */
export type QuantizableModel = Module & { outputHeadNames?(): string[] };

/** What {@link quantizeModel} did. Written to `LoadedModel.quantization` by the quantize step. */
export type QuantizationReport = {
  quant_type: ResolvedQuantConfig['quant_type'];
  blocksize: number | null;
  double_quant: boolean;
  /** Names of the layers now quantized. */
  quantized_modules: string[];
  /** Linear layers left in float32, with why. */
  skipped_modules: { name: string; reason: string }[];
  /** Parameters now stored quantized. */
  quantized_parameters: number;
  /** Bytes those parameters take now (codes + scales + nested scales) and took in float32. */
  quantized_bytes: number;
  float32_bytes: number;
  /** 8 · quantized_bytes / quantized_parameters (the paper's figure; code tables excluded). */
  bits_per_parameter: number;
  /** The same with per-tensor code tables and offsets included. */
  bits_per_parameter_with_tables: number;
  /** transformers' `quantization_config` for config.json (BitsAndBytesConfig.to_dict()). */
  quantization_config: Record<string, unknown>;
};

/** The config with defaults filled in (a new object). */
export function resolveQuantConfig(config: QuantConfig = {}): ResolvedQuantConfig {
  const out: Record<string, unknown> = {};
  for (const [k, p] of Object.entries(schema.properties)) out[k] = structuredClone((p as { default: unknown }).default);
  for (const [k, v] of Object.entries(config)) if (v !== undefined) out[k] = structuredClone(v);
  return out as ResolvedQuantConfig;
}

/**
 * Checks beyond the schema: the blocksize must be a power of two, a string `target_modules` must
 * compile. Pointers are relative to the config.
 */
export function quantConfigIssues(config: QuantConfig): { pointer: string; message: string; hint?: string }[] {
  const issues: { pointer: string; message: string; hint?: string }[] = [];
  if (config.blocksize !== undefined) {
    try {
      assertBlocksize(config.blocksize);
    } catch (e) {
      issues.push({ pointer: '/blocksize', message: (e as Error).message, hint: (e as UserError).details?.hint });
    }
  }
  if (typeof config.target_modules === 'string') {
    try {
      new RegExp(config.target_modules);
    } catch (e) {
      issues.push({ pointer: '/target_modules', message: `${JSON.stringify(config.target_modules)} is not a valid regular expression: ${(e as Error).message}`, hint: 'fix the pattern or give a list of module names' });
    }
  }
  return issues;
}

/** transformers' rule for modules_to_not_convert, plus LoRA's suffix rule: equal, ends with `.entry`, or inside `entry.`. */
export function matchesNotConvert(entries: string[], name: string): boolean {
  return entries.some((e) => name === e || name.endsWith(`.${e}`) || `.${name}.`.includes(`.${e}.`));
}

function targeted(target: ResolvedQuantConfig['target_modules'], name: string): boolean {
  if (target == null) return true;
  if (typeof target === 'string') return new RegExp(`^(?:${target})$`).test(name);
  return target.some((t) => name === t || name.endsWith(`.${t}`));
}

/** Variables used by more than one module (tied weights): quantizing one user would free the other's. */
function sharedVariables(model: Module): Set<tf.Variable> {
  const seen = new Map<tf.Variable, number>();
  for (const [, m] of model.namedModules()) {
    for (const [, v] of m.namedParameters().filter(([n]) => !n.includes('.'))) seen.set(v, (seen.get(v) ?? 0) + 1);
  }
  return new Set([...seen].filter(([, c]) => c > 1).map(([v]) => v));
}

/** Every {@link QuantLinear} of a model (including those inside LoRA wrappers, as their `baseLayer`), by name. */
export function quantizedLayers(model: Module): [string, QuantLinear][] {
  const out: [string, QuantLinear][] = [];
  for (const [name, m] of model.namedModules()) {
    if (m instanceof QuantLinear) out.push([name, m]);
    else {
      const base = (m as { baseLayer?: unknown }).baseLayer;
      if (base instanceof QuantLinear) out.push([name, base]);
    }
  }
  return out;
}

/** transformers' `BitsAndBytesConfig(...).to_dict()` for this config, for config.json's `quantization_config`. */
export function bitsAndBytesConfigDict(c: ResolvedQuantConfig, skipped: string[] | null): Record<string, unknown> {
  const fourBit = c.quant_type !== 'int8';
  return {
    _load_in_4bit: fourBit,
    _load_in_8bit: !fourBit,
    bnb_4bit_compute_dtype: 'float32',
    bnb_4bit_quant_storage: 'uint8',
    bnb_4bit_quant_type: fourBit ? c.quant_type : 'fp4',
    bnb_4bit_use_double_quant: fourBit && c.double_quant,
    llm_int8_enable_fp32_cpu_offload: false,
    llm_int8_has_fp16_weight: false,
    llm_int8_skip_modules: skipped,
    llm_int8_threshold: 6.0,
    load_in_4bit: fourBit,
    load_in_8bit: !fourBit,
    quant_method: 'bitsandbytes',
  };
}

/** A linear layer chosen for quantization: its name relative to the module searched, and in the model. */
type Chosen = { path: string; name: string; m: Linear | Conv1D };

/**
 * The `Linear` / `Conv1D` layers of `root` that `c` selects, and those it leaves in float32 with
 * why. `prefix` is `root`'s name in the model with a trailing dot (`model.layers.3.`), `''` for the
 * model itself; the config's names and patterns are matched against `prefix + path`.
 */
function selectLayers(root: Module, c: ResolvedQuantConfig, heads: string[], prefix = ''): { chosen: Chosen[]; skipped: { name: string; reason: string }[]; linear: string[] } {
  const notConvert = [...(c.modules_to_not_convert ?? heads), ...c.keep_in_fp32_modules];
  const tied = sharedVariables(root);
  const linear = root.namedModules().filter(([path, m]) => path && (m instanceof Linear || m instanceof Conv1D)) as [string, Linear | Conv1D][];
  const skipped: { name: string; reason: string }[] = [];
  const chosen: Chosen[] = [];
  for (const [path, m] of linear) {
    const name = prefix + path;
    if (!targeted(c.target_modules, name)) skipped.push({ name, reason: 'not in target_modules' });
    else if (matchesNotConvert(notConvert, name)) skipped.push({ name, reason: c.modules_to_not_convert == null && heads.some((h) => matchesNotConvert([h], name)) ? 'output head' : 'modules_to_not_convert / keep_in_fp32_modules' });
    else if (tied.has(m.weight)) skipped.push({ name, reason: 'weight tied to another module' });
    else chosen.push({ path, name, m });
  }
  return { chosen, skipped, linear: linear.map(([p]) => prefix + p) };
}

/** Quantizes the chosen layers of `root` in place; returns what was made. */
function quantizeChosen(root: Module, chosen: Chosen[], c: ResolvedQuantConfig): { name: string; layer: QuantLinear; float32Bytes: number }[] {
  return chosen.map(({ path, name, m }) => {
    const float32Bytes = m.weight.size * 4;
    const layer = quantizeLayer(m, { quantType: c.quant_type, blocksize: c.blocksize, doubleQuant: c.double_quant }, name);
    root.setSubmodule(path, layer);
    return { name, layer, float32Bytes };
  });
}

/** @throws UserError for settings that fail {@link quantConfigIssues}. */
function checkedConfig(config: QuantConfig): ResolvedQuantConfig {
  const c = resolveQuantConfig(config);
  const issues = quantConfigIssues(c);
  if (issues.length) throw new UserError(`quantization settings: ${issues[0].pointer}: ${issues[0].message}`, { pointer: issues[0].pointer, hint: issues[0].hint });
  return c;
}

/**
 * Quantizes what `c` selects in `model` and reports, counting `earlier` (layers of the same model
 * already quantized with `c`, by {@link createQuantizedModel}) as part of the same quantization.
 */
function quantizeRest(model: QuantizableModel, c: ResolvedQuantConfig, logger: StepLogger | undefined, earlier: { name: string; layer: QuantLinear; float32Bytes: number }[]): QuantizationReport {
  const heads = model.outputHeadNames?.() ?? [];
  const { chosen, skipped, linear } = selectLayers(model, c, heads);
  for (const s of skipped.filter((s) => s.reason === 'weight tied to another module')) logger?.warn(`not quantizing ${s.name}: its weight is shared with another module`);
  if (!chosen.length && !earlier.length) {
    throw new UserError(`no linear layer to quantize: ${linear.length ? `all ${linear.length} were excluded (${[...new Set(skipped.map((s) => s.reason))].join(', ')})` : 'the model has no Linear or Conv1D layer'}`, {
      pointer: '/target_modules',
      hint: linear.length ? `the model's linear layers: ${linear.join(', ')}` : 'quantize a transformer model',
    });
  }
  const order = new Map(model.namedModules().map(([n], i) => [n, i]));
  const done = [...earlier, ...quantizeChosen(model, chosen, c)].sort((a, b) => order.get(a.name)! - order.get(b.name)!);
  const weights: QuantizedWeight[] = done.map((d) => d.layer.weight);
  const float32Bytes = done.reduce((s, d) => s + d.float32Bytes, 0);
  const quantizedBytes = weights.reduce((s, w) => {
    const b = w.storage();
    return s + b.codes + b.scales + b.nestedScales;
  }, 0);
  const fourBit = c.quant_type !== 'int8';
  const report: QuantizationReport = {
    quant_type: c.quant_type,
    blocksize: fourBit ? c.blocksize : null,
    double_quant: fourBit && c.double_quant,
    quantized_modules: done.map((d) => d.name),
    skipped_modules: skipped,
    quantized_parameters: weights.reduce((s, w) => s + w.shape[0] * w.shape[1], 0),
    quantized_bytes: quantizedBytes,
    float32_bytes: float32Bytes,
    bits_per_parameter: bitsPerParameter(weights),
    bits_per_parameter_with_tables: bitsPerParameter(weights, { includeTables: true }),
    quantization_config: bitsAndBytesConfigDict(c, c.modules_to_not_convert),
  };
  logger?.info(
    `quantized ${done.length} linear layers to ${c.quant_type}${fourBit ? ` (blocksize ${c.blocksize}${c.double_quant ? ', double quantization' : ''})` : ''}: ` +
      `${report.quantized_parameters.toLocaleString('en-US')} parameters, ${report.bits_per_parameter.toFixed(3)} bits each, ` +
      `${(float32Bytes / 2 ** 20).toFixed(2)} MiB → ${(quantizedBytes / 2 ** 20).toFixed(2)} MiB; kept in float32: ${skipped.map((s) => s.name).join(', ') || 'none'}`,
  );
  return report;
}

/**
 * Replaces the selected `Linear` / `Conv1D` layers of `model` by {@link QuantLinear}s in place and
 * frees their float weights. Selected: every such layer matched by `target_modules` (null: all),
 * minus `modules_to_not_convert` (null: the model's output heads) and `keep_in_fp32_modules`.
 * Layers whose weight is tied to another module's are skipped with a warning (quantizing them would
 * free the other's weight too).
 * @throws UserError for a bad blocksize, an invalid pattern, or when nothing is left to quantize
 *   (naming the model's linear layers).
 */
export function quantizeModel(model: QuantizableModel, config: QuantConfig = {}, logger?: StepLogger): QuantizationReport {
  return quantizeRest(model, checkedConfig(config), logger, []);
}

/** Options of {@link createQuantizedModel}. */
export interface CreateQuantizedOptions {
  /** What the model is for (default: `createModel`'s inference from the config). */
  task?: ModelTask;
  /** Where the config came from, for messages. */
  file?: string;
  logger?: StepLogger;
  /** Called after each transformer block is built and quantized, with its name (`model.layers.3.`): for progress reports. */
  onBlockDone?: (prefix: string) => void;
}

/**
 * A new model with random weights for an HF `config.json` object (as `createModel`) whose linear
 * layers come out already quantized, without its float32 weights ever existing all at once: each
 * transformer block is quantized as soon as it is built (`ModelBuildOptions.onBlock`), before the
 * next block's weights are made, so the float32 peak is one block plus the embeddings and heads.
 * This is how a model whose float32 weights exceed the WASM heap (4 GiB; a 1.1B-parameter Llama is
 * 4.4 GB) can be built for QLoRA. The selection and the report are exactly those of
 * {@link quantizeModel} on the float32 model (layers outside the blocks are quantized after the
 * build when selected).
 * @throws UserError for invalid settings (before anything is built), createModel's errors, and
 *   {@link quantizeModel}'s when nothing is selected.
 */
export function createQuantizedModel(config: ModelConfig, quant: QuantConfig = {}, opts: CreateQuantizedOptions = {}): { model: PreTrainedModel; report: QuantizationReport } {
  const c = checkedConfig(quant);
  const earlier: { name: string; layer: QuantLinear; float32Bytes: number }[] = [];
  // Output heads live outside the blocks, so a block's selection does not depend on them.
  const model = createModel(config, opts.task, opts.file, {
    onBlock: (block, prefix) => {
      earlier.push(...quantizeChosen(block, selectLayers(block, c, [], prefix).chosen, c));
      opts.onBlockDone?.(prefix);
    },
  });
  try {
    return { model, report: quantizeRest(model, c, opts.logger, earlier) };
  } catch (e) {
    model.dispose();
    throw e;
  }
}

/**
 * Replaces every {@link QuantLinear} of `model` (not wrapped in an adapter) by a float32 `Linear` /
 * `Conv1D` holding its dequantized weight. The dequantized values are exactly `code · absmax`: the
 * rounding of quantization is not undone.
 * @returns the names of the layers converted.
 * @throws UserError when a quantized layer is wrapped by an adapter (unload or merge the adapter first).
 */
export function dequantizeModel(model: Module): string[] {
  const done: string[] = [];
  for (const [name, q] of quantizedLayers(model)) {
    if (model.getSubmodule(name) !== q) {
      throw new UserError(`${name} is wrapped by an adapter; dequantizing under it would detach the adapter`, { hint: 'merge the QLoRA adapter with mergeAndUnload(), or unload it, before dequantizing' });
    }
    const f = q.toFloatModule();
    f.training = q.training;
    model.setSubmodule(name, f);
    q.dispose();
    done.push(name);
  }
  return done;
}
