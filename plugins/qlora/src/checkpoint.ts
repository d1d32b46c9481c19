/**
 * Whole-model checkpoints with bitsandbytes-quantized linear layers, as transformers writes and
 * reads them (`save_pretrained` / `from_pretrained` of a model loaded with a `BitsAndBytesConfig`):
 * config.json with `quantization_config`, and model.safetensors holding, per quantized layer, the
 * serialized form of bnb-format.ts, and every other tensor as usual.
 */
import * as tf from '@tensorflow/tfjs';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { UserError, writeJsonAtomic } from '@peftkit/core';
import {
  Conv1D,
  Linear,
  pretrainedConfigJson,
  createModel,
  forEachSafetensor,
  hasTokenizer,
  loadTokenizer,
  readSafetensorsHeader,
  readSafetensorsRaw,
  resolveModelSource,
  weightFiles,
  writeSafetensors,
  type LoadedModel,
  type ModelBuildOptions,
  type ModelConfig,
  type ModelTask,
  type PreTrainedModel,
  type RawTensor,
  type WritableTensor,
} from '@peftkit/models';
import { deserializeWeight, serializeWeight, storedQuantType } from './bnb-format.js';
import { QuantLinear } from './quant-linear.js';
import { bitsAndBytesConfigDict, quantizedLayers, resolveQuantConfig } from './quantize-model.js';
import { bitsPerParameter } from './quantized-weight.js';

/** Prefixes under which transformers nests the base model in its head classes (`base_model_prefix`). */
const BASE_PREFIXES = ['transformer', 'model', 'bert', 'distilbert', 'roberta'];

/** Suffixes of a quantized layer's serialized tensors (see bnb-format.ts). */
const QUANT_SUFFIXES = ['weight', 'weight.absmax', 'weight.quant_map', 'weight.nested_absmax', 'weight.nested_quant_map', 'weight.quant_state.bitsandbytes__nf4', 'weight.quant_state.bitsandbytes__fp4', 'SCB', 'weight_format'];
const MARKERS = /^(.*)\.(weight\.quant_state\.bitsandbytes__(?:nf4|fp4)|SCB)$/;

/**
 * The tensors of a model with quantized layers, keyed as transformers saves them: the model's
 * float parameters (each tied weight once) plus each quantized layer's serialized form.
 * @throws UserError when a quantized layer is wrapped by an adapter (save the base before injecting,
 *   or unload / merge the adapter first).
 */
export function quantizedStateDict(model: PreTrainedModel): Map<string, WritableTensor> {
  const out = new Map<string, WritableTensor>();
  const seen = new Set<tf.Tensor>();
  for (const [path, q] of quantizedLayers(model)) {
    if (model.getSubmodule(path) !== q) throw new UserError(`${path}: the quantized layer is wrapped by an adapter`, { hint: 'save the quantized base before injecting, or unload / merge the adapter first' });
    for (const [k, t] of serializeWeight(q.weight)) out.set(`${path}.${k}`, t);
  }
  for (const [name, t] of model.stateDict()) {
    if (seen.has(t)) continue;
    seen.add(t);
    out.set(name, t);
  }
  return out;
}

/** transformers' `quantization_config` for a model quantized here, from its layers. */
export function quantizationConfigOf(model: PreTrainedModel): Record<string, unknown> {
  const layers = quantizedLayers(model);
  if (!layers.length) throw new UserError('the model has no quantized layer', { hint: 'quantize it first (a quantize step)' });
  const w = layers[0][1].weight;
  const d = w.describe();
  return bitsAndBytesConfigDict(resolveQuantConfig({ quant_type: w.quantType, blocksize: (d.blocksize as number) ?? 64, double_quant: (d.double_quant as boolean) ?? false }), null);
}

/**
 * Writes a quantized model as transformers' `save_pretrained` does for a bitsandbytes model:
 * config.json (`pretrainedConfigJson` of @peftkit/models plus `quantization_config`), model.safetensors
 * (metadata `{"format": "pt"}`) and the tokenizer's files. Atomic writes.
 * @returns the file names written.
 */
export function saveQuantizedPretrained(loaded: LoadedModel, folder: string): string[] {
  const { model } = loaded;
  const quantizationConfig = (loaded.quantization?.quantization_config as Record<string, unknown> | undefined) ?? quantizationConfigOf(model);
  const cfg = pretrainedConfigJson(model);
  writeSafetensors(join(folder, 'model.safetensors'), quantizedStateDict(model), { format: 'pt' });
  writeJsonAtomic(join(folder, 'config.json'), sortKeys({ ...cfg, quantization_config: quantizationConfig }));
  const written = ['config.json', 'model.safetensors'];
  if (loaded.tokenizer?.save) written.push(...loaded.tokenizer.save(folder));
  return written;
}

function sortKeys(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(sortKeys);
  if (v && typeof v === 'object') return Object.fromEntries(Object.keys(v).sort().map((k) => [k, sortKeys((v as Record<string, unknown>)[k])]));
  return v;
}

/** The module a checkpoint layer prefix belongs to (with or without the base-model prefix). */
function resolveModulePath(model: PreTrainedModel, prefix: string): string | undefined {
  const candidates = [prefix, ...BASE_PREFIXES.map((p) => `${p}.${prefix}`), ...BASE_PREFIXES.filter((p) => prefix.startsWith(`${p}.`)).map((p) => prefix.slice(p.length + 1))];
  return candidates.find((c) => model.getSubmodule(c) !== undefined);
}

/** What {@link loadBnbWeights} loaded. */
export interface BnbLoadReport {
  files: string[];
  /** Layers rebuilt from their quantized form, by model name. */
  quantized: string[];
  /** Other tensors assigned. */
  loaded: number;
  missing: string[];
  unexpected: string[];
  /** Bits per parameter of the quantized layers, from their stored bytes. */
  bitsPerParameter: number;
}

/**
 * Loads a bitsandbytes-quantized checkpoint into `model` (built from the same config.json): every
 * layer stored quantized replaces its `Linear` / `Conv1D` by a {@link QuantLinear} holding the stored
 * bytes as they are (no float weight is made); the other tensors load as usual (F16/BF16 upcast).
 * @throws UserError / CheckpointError naming the file and tensor: a quantized layer the model does
 *   not have or whose shape differs, inconsistent quant state, and (strict) missing or unexpected tensors.
 */
export function loadBnbWeights(model: PreTrainedModel, files: string[], opts: { strict?: boolean; weightMap?: Record<string, string>; folder?: string } = {}): BnbLoadReport {
  const where = new Map<string, string>(); // tensor name → file
  for (const f of files) {
    for (const name of Object.keys(readSafetensorsHeader(f).tensors)) {
      if (opts.weightMap && opts.folder && opts.weightMap[name] !== undefined && join(opts.folder, opts.weightMap[name]) !== f) continue;
      where.set(name, f);
    }
  }
  const fileOf = (prefix: string) => where.get(`${prefix}.${storedQuantType((n) => where.has(`${prefix}.${n}`)) === 'int8' ? 'SCB' : 'weight'}`)!;
  // Quantized layers, with their model names, in the model's module order.
  const order = new Map(model.namedModules().map(([n], i) => [n, i]));
  const layers = [...where.keys()]
    .map((k) => MARKERS.exec(k)?.[1])
    .filter((p): p is string => p !== undefined)
    .map((prefix) => {
      const path = resolveModulePath(model, prefix);
      if (!path) throw new UserError(`${fileOf(prefix)}: quantized layer "${prefix}" has no counterpart in the ${String(model.config.model_type)} model`, { file: fileOf(prefix), hint: 'use the config.json that goes with this checkpoint' });
      return { prefix, path };
    })
    .sort((a, b) => order.get(a.path)! - order.get(b.path)!);
  const consumed = new Set<string>();
  const quantized: string[] = [];
  for (const { prefix, path } of layers) {
    const file = fileOf(prefix);
    const m = model.getSubmodule(path)!;
    if (!(m instanceof Linear || m instanceof Conv1D)) throw new UserError(`${file}: "${prefix}" is stored quantized, but ${path} is a ${m.constructor.name}, not a linear layer`, { file });
    const get = (n: string): RawTensor | undefined => {
      const f = where.get(`${prefix}.${n}`);
      return f ? readSafetensorsRaw(f, `${prefix}.${n}`) : undefined;
    };
    const w = deserializeWeight(get, `${file}: ${prefix}`);
    if (w.shape[0] !== m.outFeatures || w.shape[1] !== m.inFeatures) {
      throw new UserError(`${file}: ${prefix} is quantized with shape [${w.shape.join(', ')}], but ${path} is [out ${m.outFeatures}, in ${m.inFeatures}]`, { file, hint: 'the checkpoint and config.json disagree' });
    }
    for (const s of QUANT_SUFFIXES) if (where.has(`${prefix}.${s}`)) consumed.add(`${prefix}.${s}`);
    const q = new QuantLinear(w, m.bias, m instanceof Conv1D ? 'conv1d' : 'linear', path);
    q.training = m.training;
    m.weight.dispose();
    model.setSubmodule(path, q);
    quantized.push(path);
  }
  const rest = new Map<string, tf.Tensor>();
  try {
    for (const f of files) {
      const names = [...where].filter(([n, file]) => file === f && !consumed.has(n)).map(([n]) => n);
      if (names.length) forEachSafetensor(f, (name, t) => void rest.set(name, t.clone()), { names });
    }
    const r = model.loadStateDict(rest, false);
    const where1 = files.length === 1 ? files[0] : opts.folder ?? files.join(', ');
    if (r.mismatched.length) throw new UserError(`${where1}: tensor shapes do not match the model: ${r.mismatched.join('; ')}`, { file: where1 });
    if ((opts.strict ?? true) && (r.missing.length || r.unexpected.length)) {
      const parts = [r.missing.length ? `missing tensors: ${r.missing.join(', ')}` : '', r.unexpected.length ? `unexpected tensors: ${r.unexpected.join(', ')}` : ''].filter(Boolean);
      throw new UserError(`${where1}: the checkpoint does not match the model: ${parts.join('; ')}`, { file: where1, hint: 'use the checkpoint that goes with this config.json' });
    }
    const layers = quantizedLayers(model).map(([, q]) => q.weight);
    return { files, quantized, loaded: rest.size - r.unexpected.length, missing: r.missing, unexpected: r.unexpected, bitsPerParameter: layers.length ? bitsPerParameter(layers) : 0 };
  } finally {
    for (const t of rest.values()) t.dispose();
  }
}

/** Checkpoint layer prefixes that may name the model layer `name` (the inverse of resolveModulePath's candidates). */
function checkpointNames(name: string): string[] {
  return [name, ...BASE_PREFIXES.filter((p) => name.startsWith(`${p}.`)).map((p) => name.slice(p.length + 1)), ...BASE_PREFIXES.map((p) => `${p}.${name}`)];
}

/**
 * Build options that free, as each transformer block is built, the float32 weight of every linear
 * layer the checkpoint stores quantized (`stored`: the checkpoint's quantized layer prefixes).
 * {@link loadBnbWeights} then replaces those layers by {@link QuantLinear}s (it reads only their
 * shapes and bias), so a 4-bit checkpoint of a model whose float32 weights exceed the WASM heap
 * can be loaded: the float32 peak is one block plus the embeddings and heads.
 */
export function freeStoredQuantized(stored: Set<string>): ModelBuildOptions {
  return {
    onBlock: (block, prefix) => {
      for (const [path, m] of block.namedModules()) {
        if ((m instanceof Linear || m instanceof Conv1D) && checkpointNames(prefix + path).some((c) => stored.has(c))) m.weight.dispose();
      }
    },
  };
}

/** Options of {@link loadQuantizedPretrained}. */
export interface LoadQuantizedOptions {
  task?: ModelTask;
  strict?: boolean;
  revision?: string;
}

/**
 * `from_pretrained` of a bitsandbytes-quantized model folder (e.g. a `*-bnb-4bit` repository, or one
 * written by {@link saveQuantizedPretrained}): the model comes back with its quantized layers as
 * {@link QuantLinear}s and `quantization` filled from config.json's `quantization_config`. The
 * float32 weights of the quantized layers never exist all at once ({@link freeStoredQuantized}).
 * @throws UserError when the checkpoint has no quantized layer (load it with the load step instead),
 *   and the errors of {@link loadBnbWeights}.
 */
export async function loadQuantizedPretrained(source: string, opts: LoadQuantizedOptions = {}): Promise<LoadedModel & { report: BnbLoadReport }> {
  const { folder, hubId } = await resolveModelSource(source, { revision: opts.revision });
  const cfgFile = join(folder, 'config.json');
  let config: ModelConfig;
  try {
    config = JSON.parse(readFileSync(cfgFile, 'utf8'));
  } catch (e) {
    throw new UserError(`${cfgFile}: cannot read config.json (${(e as Error).message})`, { file: cfgFile });
  }
  const { files, weightMap } = weightFiles(folder);
  const stored = new Set(files.flatMap((f) => Object.keys(readSafetensorsHeader(f).tensors).map((k) => MARKERS.exec(k)?.[1]).filter((p): p is string => p !== undefined)));
  if (!stored.size) throw new UserError(`${folder}: no bitsandbytes-quantized layer in the checkpoint`, { file: folder, hint: 'load it with the load step and add a quantize step' });
  const model = createModel(config, opts.task, cfgFile, freeStoredQuantized(stored));
  try {
    const report = loadBnbWeights(model, files, { strict: opts.strict, weightMap, folder });
    model.eval();
    const tokenizer = hasTokenizer(folder) ? loadTokenizer(folder) : undefined;
    const qc = (config as { quantization_config?: Record<string, unknown> }).quantization_config;
    const first = quantizedLayers(model)[0][1].weight;
    const d = first.describe();
    return {
      model,
      tokenizer,
      source: hubId ?? source,
      quantization: { ...d, quantized_modules: report.quantized, bits_per_parameter: report.bitsPerParameter, quantization_config: qc ?? quantizationConfigOf(model), loaded_prequantized: true },
      report,
    };
  } catch (e) {
    model.dispose();
    throw e;
  }
}

