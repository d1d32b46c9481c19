/**
 * AdapterHub's folder layout for bottleneck adapters (adapter-hub/adapters, `loading.py`,
 * `utils.py`): `adapter_config.json` holding `{"config": {...BnConfig...}, "hidden_size",
 * "model_class", "model_name", "model_type", "name", "version"}` (keys sorted, indent 2) and
 * `adapter.safetensors` with the adapter's parameters under the model's module paths, the adapter's
 * name kept in every key (`bert.encoder.layer.0.output.adapters.<name>.adapter_down.0.weight`).
 *
 * Pure reading and writing; turning a read folder into an injected adapter is in `model.ts`.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type * as tf from '@tensorflow/tfjs';
import { UserError, writeFileAtomic } from '@peftkit/core';
import { pythonJsonDumps, readSafetensors, writeSafetensors } from '@peftkit/models';
import type { BottleneckAdapterConfig } from './config.generated.js';

export const ADAPTERHUB_CONFIG_NAME = 'adapter_config.json';
export const ADAPTERHUB_WEIGHTS_NAME = 'adapter.safetensors';
/** AdapterHub's pickle weights file: refused, never unpickled. */
export const ADAPTERHUB_PICKLE_NAME = 'pytorch_adapter.bin';
/** Written as `version`: not AdapterHub's `adapters.x.y.z`, so its loader applies no version fixes. */
export const PEFTKIT_ADAPTERHUB_VERSION = 'peftkit-0.1.0';
/** AdapterHub's prediction-head files (adapters/utils.py: HEAD_CONFIG_NAME, SAFE_HEAD_WEIGHTS_NAME, HEAD_WEIGHTS_NAME). */
export const ADAPTERHUB_HEAD_CONFIG_NAME = 'head_config.json';
export const ADAPTERHUB_HEAD_WEIGHTS_NAME = 'model_head.safetensors';
export const ADAPTERHUB_HEAD_PICKLE_NAME = 'pytorch_model_head.bin';

/** The BnConfig fields of our schema, in AdapterHub's spelling. */
const CONFIG_FIELDS = [
  'mh_adapter', 'output_adapter', 'reduction_factor', 'non_linearity', 'original_ln_before', 'original_ln_after',
  'residual_before_ln', 'ln_before', 'ln_after', 'adapter_residual_before_ln', 'init_weights', 'is_parallel',
  'scaling', 'dropout', 'leave_out',
] as const;

/**
 * BnConfig fields peftkit does not implement, written with AdapterHub's defaults; a file that sets
 * one to another value describes an adapter peftkit would compute differently, so it is refused.
 */
const INACTIVE_DEFAULTS: Record<string, unknown> = {
  cross_adapter: false,
  factorized_phm_W: true,
  factorized_phm_rule: false,
  hypercomplex_nonlinearity: 'glorot-uniform',
  inv_adapter: null,
  inv_adapter_reduction_factor: null,
  learn_phm: true,
  phm_bias: true,
  phm_c_init: 'normal',
  phm_dim: 4,
  phm_init_range: 0.0001,
  phm_layer: false,
  phm_rank: 1,
  shared_W_phm: false,
  shared_phm_rule: true,
  stochastic_depth: 0.0,
  use_gating: false,
};
/** Of {@link INACTIVE_DEFAULTS}, those whose value changes the computation (the phm_* details only matter with phm_layer). */
const MUST_BE_DEFAULT = ['cross_adapter', 'inv_adapter', 'phm_layer', 'stochastic_depth', 'use_gating'];

/** AdapterHub's named configs (`ADAPTER_CONFIG_MAP`) that peftkit implements, for files whose `config` is a string. */
const NAMED_CONFIGS: Record<string, Partial<BottleneckAdapterConfig>> = {
  double_seq_bn: { mh_adapter: true, output_adapter: true, non_linearity: 'swish', reduction_factor: 16, original_ln_before: false, original_ln_after: true, residual_before_ln: true, init_weights: 'bert' },
  houlsby: { mh_adapter: true, output_adapter: true, non_linearity: 'swish', reduction_factor: 16, original_ln_before: false, original_ln_after: true, residual_before_ln: true, init_weights: 'bert' },
  par_bn: { mh_adapter: false, output_adapter: true, non_linearity: 'relu', reduction_factor: 2, original_ln_before: false, original_ln_after: true, init_weights: 'mam_adapter', is_parallel: true, scaling: 4 },
  parallel: { mh_adapter: false, output_adapter: true, non_linearity: 'relu', reduction_factor: 2, original_ln_before: false, original_ln_after: true, init_weights: 'mam_adapter', is_parallel: true, scaling: 4 },
};

/** Old AdapterHub files (no `version`) named activations differently (`ACTIVATION_RENAME` in utils.py). */
const ACTIVATION_RENAME: Record<string, string> = { gelu: 'gelu_new', gelu_orig: 'gelu' };

/** What `adapter_config.json` says besides the BnConfig. */
export interface AdapterHubMeta {
  /** The adapter's name, kept in every tensor key. */
  name: string;
  hiddenSize: number;
  /** The model class it was trained with (`GPT2LMHeadModel`, `BertAdapterModel`, ...). */
  modelClass: string | null;
  /** The base model (hub id or folder). */
  modelName: string | null;
  modelType: string | null;
}

/**
 * The content of AdapterHub's `adapter_config.json` (`build_full_config` in configuration): the
 * full BnConfig (fields peftkit does not implement at AdapterHub's defaults) and the metadata.
 */
export function adapterHubConfigJson(config: Required<BottleneckAdapterConfig>, meta: AdapterHubMeta): Record<string, unknown> {
  const bn: Record<string, unknown> = { ...INACTIVE_DEFAULTS };
  for (const f of CONFIG_FIELDS) bn[f] = config[f];
  return {
    config: bn,
    hidden_size: meta.hiddenSize,
    model_class: meta.modelClass,
    model_name: meta.modelName,
    model_type: meta.modelType,
    name: meta.name,
    version: PEFTKIT_ADAPTERHUB_VERSION,
  };
}

/**
 * Writes an AdapterHub folder: `adapter_config.json` (as Python's `json.dump(indent=2,
 * sort_keys=True)`) and `adapter.safetensors` (float32, metadata `{"format": "pt"}`), each atomically.
 * @returns the file names written
 */
export function writeAdapterHubFolder(dir: string, configJson: Record<string, unknown>, tensors: Map<string, tf.Tensor>): string[] {
  writeSafetensors(join(dir, ADAPTERHUB_WEIGHTS_NAME), tensors, { format: 'pt' });
  writeFileAtomic(join(dir, ADAPTERHUB_CONFIG_NAME), pythonJsonDumps(configJson));
  return [ADAPTERHUB_CONFIG_NAME, ADAPTERHUB_WEIGHTS_NAME];
}

/** True when `json` (an `adapter_config.json`) is AdapterHub's layout for a bottleneck adapter, not HF PEFT's. */
export function isAdapterHubBottleneckConfig(json: Record<string, unknown>): boolean {
  if ('peft_type' in json || !('config' in json)) return false;
  const c = json.config;
  if (typeof c === 'string') return c in NAMED_CONFIGS || c === 'seq_bn' || c === 'pfeiffer';
  if (!c || typeof c !== 'object') return false;
  const arch = (c as Record<string, unknown>).architecture;
  return (arch === undefined || arch === null || arch === 'bottleneck') && 'reduction_factor' in (c as object);
}

/**
 * Turns the `config` object of an AdapterHub `adapter_config.json` into our config, refusing what
 * peftkit would compute differently.
 * @param file - the file, for messages
 * @param warn - told about keys that are ignored
 * @throws UserError naming the file and the JSON pointer of the offending field
 */
export function configFromAdapterHub(json: Record<string, unknown>, file: string, warn: (msg: string) => void = () => {}): BottleneckAdapterConfig {
  let raw = json.config;
  if (typeof raw === 'string') {
    if (raw === 'seq_bn' || raw === 'pfeiffer') {
      throw new UserError(`${file}: /config is "${raw}", AdapterHub's Pfeiffer preset, which applies the model's own residual and LayerNorm before the adapter (original_ln_before: true); peftkit does not compute that placement`, {
        file, pointer: '/config', hint: 'peftkit reads bottleneck adapters trained with original_ln_before: false (houlsby / double_seq_bn, par_bn, or seq_bn with original_ln_before: false)',
      });
    }
    if (!(raw in NAMED_CONFIGS)) throw new UserError(`${file}: /config names the AdapterHub config "${raw}", which peftkit does not know`, { file, pointer: '/config', hint: `known: ${Object.keys(NAMED_CONFIGS).join(', ')}` });
    raw = { ...NAMED_CONFIGS[raw] };
  }
  if (!raw || typeof raw !== 'object' || Array.isArray(raw)) {
    throw new UserError(`${file}: /config must be an object (AdapterHub's BnConfig)`, { file, pointer: '/config' });
  }
  const c = raw as Record<string, unknown>;
  if (c.architecture !== undefined && c.architecture !== null && c.architecture !== 'bottleneck') {
    throw new UserError(`${file}: /config/architecture is "${String(c.architecture)}": this is an AdapterHub ${String(c.architecture)} adapter, not a bottleneck adapter`, {
      file, pointer: '/config/architecture', hint: 'the @peftkit/adapter plugin reads bottleneck adapters only',
    });
  }
  for (const f of MUST_BE_DEFAULT) {
    if (f in c && c[f] !== INACTIVE_DEFAULTS[f] && !(c[f] === 0 && INACTIVE_DEFAULTS[f] === 0)) {
      throw new UserError(`${file}: /config/${f} is ${JSON.stringify(c[f])}; peftkit implements bottleneck adapters without ${f}`, {
        file, pointer: `/config/${f}`, hint: `only ${JSON.stringify(INACTIVE_DEFAULTS[f])} is supported`,
      });
    }
  }
  const out: Record<string, unknown> = {};
  for (const f of CONFIG_FIELDS) if (f in c && c[f] !== null) out[f] = c[f];
  if (typeof out.non_linearity === 'string') {
    out.non_linearity = out.non_linearity.toLowerCase();
    if (!('version' in json) && (out.non_linearity as string) in ACTIVATION_RENAME) out.non_linearity = ACTIVATION_RENAME[out.non_linearity as string];
  }
  const unknown = Object.keys(c).filter((k) => !(CONFIG_FIELDS as readonly string[]).includes(k) && !(k in INACTIVE_DEFAULTS) && k !== 'architecture');
  if (unknown.length) warn(`${file}: ignoring AdapterHub config keys peftkit does not know: ${unknown.join(', ')}`);
  return out as BottleneckAdapterConfig;
}

/**
 * `head_config.json` of a static model's prediction head, as AdapterHub's `PredictionHeadLoader.save`
 * writes it for a transformers class with a head (`build_full_config(None, model.config, name=None,
 * model_name, model_class, save_id2label=True)` plus `num_labels`): `config` and `name` are null,
 * `model_class` names the class the head belongs to (`GPT2ForSequenceClassification`).
 */
export function adapterHubHeadConfigJson(meta: AdapterHubMeta, modelConfig: Record<string, unknown>): Record<string, unknown> {
  const numLabels = typeof modelConfig.num_labels === 'number' ? modelConfig.num_labels : null;
  const id2label = modelConfig.id2label && typeof modelConfig.id2label === 'object' ? (modelConfig.id2label as Record<string, string>) : null;
  const labels = id2label ? Object.entries(id2label) : numLabels ? Array.from({ length: numLabels }, (_, i) => [String(i), `LABEL_${i}`]) : [];
  return {
    config: null,
    hidden_size: meta.hiddenSize,
    label2id: Object.fromEntries(labels.map(([i, l]) => [l, Number(i)])),
    model_class: meta.modelClass,
    model_name: meta.modelName,
    model_type: meta.modelType,
    name: null,
    num_labels: numLabels ?? labels.length,
    version: PEFTKIT_ADAPTERHUB_VERSION,
  };
}

/**
 * Writes a prediction head beside an adapter: `head_config.json` and `model_head.safetensors`
 * (keys: the head's parameter names in the model, `score.weight`).
 * @returns the file names written
 */
export function writeAdapterHubHead(dir: string, configJson: Record<string, unknown>, tensors: Map<string, tf.Tensor>): string[] {
  writeSafetensors(join(dir, ADAPTERHUB_HEAD_WEIGHTS_NAME), tensors, { format: 'pt' });
  writeFileAtomic(join(dir, ADAPTERHUB_HEAD_CONFIG_NAME), pythonJsonDumps(configJson));
  return [ADAPTERHUB_HEAD_CONFIG_NAME, ADAPTERHUB_HEAD_WEIGHTS_NAME];
}

/** A prediction head saved beside an adapter. The caller disposes `tensors`. */
export interface AdapterHubHead {
  json: Record<string, unknown>;
  /** `num_labels`, else the rows of the head's last weight; null when neither tells. */
  numLabels: number | null;
  tensors: Map<string, tf.Tensor>;
}

/**
 * Reads `head_config.json` + `model_head.safetensors` when the folder has them.
 * @returns undefined when the folder holds no head
 * @throws UserError for invalid JSON, or a head only in a pickle (never read)
 */
export function readAdapterHubHead(dir: string): AdapterHubHead | undefined {
  const cfgFile = join(dir, ADAPTERHUB_HEAD_CONFIG_NAME);
  const weights = join(dir, ADAPTERHUB_HEAD_WEIGHTS_NAME);
  if (!existsSync(weights)) {
    const pickle = join(dir, ADAPTERHUB_HEAD_PICKLE_NAME);
    if (existsSync(pickle)) {
      throw new UserError(`${dir} holds the prediction head only as ${ADAPTERHUB_HEAD_PICKLE_NAME}, a PyTorch pickle, which peftkit never loads`, {
        file: pickle, hint: 'save it again with AdapterHub: model.save_adapter(dir, name, with_head=True, use_safetensors=True), which writes model_head.safetensors',
      });
    }
    return undefined;
  }
  let json: Record<string, unknown> = {};
  if (existsSync(cfgFile)) {
    try {
      json = JSON.parse(readFileSync(cfgFile, 'utf8'));
    } catch (e) {
      throw new UserError(`${cfgFile} is not valid JSON: ${(e as Error).message}`, { file: cfgFile });
    }
  }
  const { tensors } = readSafetensors(weights);
  const rows = [...tensors].filter(([k, t]) => k.endsWith('.weight') && t.rank === 2).map(([, t]) => t.shape[0]);
  const numLabels = typeof json.num_labels === 'number' ? json.num_labels : rows.length ? rows[rows.length - 1] : null;
  return { json, numLabels, tensors };
}

/** What {@link readAdapterHubFolder} returns. The caller disposes `tensors` (and the head's). */
export interface AdapterHubFolder {
  json: Record<string, unknown>;
  config: BottleneckAdapterConfig;
  meta: AdapterHubMeta;
  tensors: Map<string, tf.Tensor>;
  /** The prediction head saved beside the adapter (`with_head=True`), when there is one. */
  head?: AdapterHubHead;
}

/**
 * Reads an AdapterHub adapter folder (`adapter_config.json` + `adapter.safetensors`).
 * @throws UserError when a file is missing, the weights are only in a pickle (`pytorch_adapter.bin`,
 *   never executed), the config is not a bottleneck adapter or uses what peftkit does not implement.
 */
export function readAdapterHubFolder(dir: string, warn: (msg: string) => void = () => {}): AdapterHubFolder {
  const cfgFile = join(dir, ADAPTERHUB_CONFIG_NAME);
  if (!existsSync(cfgFile)) throw new UserError(`${cfgFile} does not exist: not an AdapterHub adapter folder`, { file: cfgFile, hint: 'point to the folder that holds adapter_config.json and adapter.safetensors' });
  let json: Record<string, unknown>;
  try {
    json = JSON.parse(readFileSync(cfgFile, 'utf8'));
  } catch (e) {
    throw new UserError(`${cfgFile} is not valid JSON: ${(e as Error).message}`, { file: cfgFile });
  }
  if (!json || typeof json !== 'object' || Array.isArray(json)) throw new UserError(`${cfgFile} must hold a JSON object`, { file: cfgFile, pointer: '' });
  if ('peft_type' in json) {
    throw new UserError(`${cfgFile} is an HF PEFT adapter (peft_type ${JSON.stringify(json.peft_type)}), not an AdapterHub one`, { file: cfgFile, pointer: '/peft_type', hint: 'load it with the method of that peft_type' });
  }
  const config = configFromAdapterHub(json, cfgFile, warn);
  if (typeof json.name !== 'string' || !json.name) throw new UserError(`${cfgFile}: /name must be the adapter's name (it is part of every tensor key)`, { file: cfgFile, pointer: '/name' });
  if (typeof json.hidden_size !== 'number') throw new UserError(`${cfgFile}: /hidden_size must be a number`, { file: cfgFile, pointer: '/hidden_size' });
  const weights = join(dir, ADAPTERHUB_WEIGHTS_NAME);
  if (!existsSync(weights)) {
    const pickle = join(dir, ADAPTERHUB_PICKLE_NAME);
    if (existsSync(pickle)) {
      throw new UserError(`${dir} holds the adapter's weights only as ${ADAPTERHUB_PICKLE_NAME}, a PyTorch pickle, which peftkit never loads (unpickling can run arbitrary code)`, {
        file: pickle, hint: `convert it with AdapterHub: model.load_adapter(...) then model.save_adapter(dir, name, use_safetensors=True), which writes ${ADAPTERHUB_WEIGHTS_NAME}`,
      });
    }
    throw new UserError(`${weights} does not exist`, { file: weights, hint: `an AdapterHub folder holds ${ADAPTERHUB_CONFIG_NAME} and ${ADAPTERHUB_WEIGHTS_NAME}` });
  }
  const { tensors } = readSafetensors(weights);
  return {
    json,
    head: readAdapterHubHead(dir),
    config,
    meta: {
      name: json.name,
      hiddenSize: json.hidden_size,
      modelClass: typeof json.model_class === 'string' ? json.model_class : null,
      modelName: typeof json.model_name === 'string' ? json.model_name : null,
      modelType: typeof json.model_type === 'string' ? json.model_type : null,
    },
    tensors,
  };
}
