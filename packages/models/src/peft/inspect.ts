/**
 * `inspectAdapter`: what an adapter folder holds, read from its config and the safetensors header
 * only (no tensor data is loaded), and whether it fits a base model.
 *
 * Formats: HF PEFT folders (`adapter_config.json` + `adapter_model.safetensors`, see
 * `peft/utils/save_and_load.py`): LORA, PROMPT_TUNING, P_TUNING, PREFIX_TUNING in detail, any other
 * `peft_type` in outline; AdapterHub bottleneck adapters (`adapter_config.json` with a `config`
 * block + `adapter.safetensors`, adapter-hub/adapters `loading.py`). A model checkpoint
 * (`config.json` + `model.safetensors`) is recognised and reported as a model, not an adapter.
 */
import { existsSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { basename, join, resolve } from 'node:path';
import { UserError } from '@peftkit/core';
import type { LoadedModel, ModelConfig, ModelTask } from '../model.js';
import { inferTask } from '../architectures/index.js';
import { readSafetensorsHeader, type SafetensorsDtype } from '../io/safetensors.js';
import { weightFiles } from '../io/checkpoint.js';
import { resolveModelSource } from '../io/hub.js';
import { HF_ADAPTER_CONFIG, HF_ADAPTER_PICKLE, HF_ADAPTER_WEIGHTS, folderBytes } from './hf-adapter-io.js';

/** AdapterHub's weights file and its pickle predecessor. */
const ADAPTERHUB_WEIGHTS = 'adapter.safetensors';
const ADAPTERHUB_PICKLE = 'pytorch_adapter.bin';
/** AdapterHub's prediction head saved beside an adapter (`save_adapter(..., with_head=True)`). */
const ADAPTERHUB_HEAD_CONFIG = 'head_config.json';
const ADAPTERHUB_HEAD_WEIGHTS = 'model_head.safetensors';
/** HF PEFT's prefix before every saved key. */
const HF_PREFIX = 'base_model.model.';
/** Prefixes under which transformers nests the bare model in its head classes (`base_model_prefix`). */
const BASE_PREFIXES = ['transformer', 'model', 'bert', 'distilbert', 'roberta'];

/** Fields of HF PEFT's `PeftConfig` (every method). */
const PEFT_CONFIG_FIELDS = ['peft_type', 'task_type', 'base_model_name_or_path', 'revision', 'inference_mode', 'auto_mapping', 'peft_version'];
/** Fields of HF PEFT's `LoraConfig` up to PEFT 0.17 (`peft/tuners/lora/config.py`), plus what peftkit's LoRA reader knows. */
const LORA_FIELDS = [
  'r', 'target_modules', 'exclude_modules', 'lora_alpha', 'lora_dropout', 'fan_in_fan_out', 'bias', 'use_rslora', 'modules_to_save',
  'init_lora_weights', 'layers_to_transform', 'layers_pattern', 'rank_pattern', 'alpha_pattern', 'megatron_config', 'megatron_core',
  'trainable_token_indices', 'loftq_config', 'eva_config', 'corda_config', 'use_dora', 'use_qalora', 'qalora_group_size',
  'layer_replication', 'runtime_config', 'lora_bias', 'target_parameters', 'alora_invocation_tokens', 'arrow_config',
  'ensure_weight_tying', 'use_bdlora',
];
/** `PromptLearningConfig` and its subclasses (`peft/config.py`, `tuners/{prompt_tuning,p_tuning,prefix_tuning}/config.py`). */
const PROMPT_FIELDS = [
  'num_virtual_tokens', 'token_dim', 'num_transformer_submodules', 'num_attention_heads', 'num_layers', 'modules_to_save',
  'prompt_tuning_init', 'prompt_tuning_init_text', 'tokenizer_name_or_path', 'tokenizer_kwargs',
  'encoder_hidden_size', 'prefix_projection', 'encoder_reparameterization_type', 'encoder_num_layers', 'encoder_dropout',
];
/** AdapterHub's `adapter_config.json` top level and BnConfig fields (adapters/configuration/adapter_config.py). */
const ADAPTERHUB_TOP = ['config', 'hidden_size', 'model_class', 'model_name', 'model_type', 'name', 'version'];
const BN_FIELDS = [
  'architecture', 'mh_adapter', 'output_adapter', 'reduction_factor', 'non_linearity', 'original_ln_before', 'original_ln_after',
  'residual_before_ln', 'ln_before', 'ln_after', 'adapter_residual_before_ln', 'init_weights', 'is_parallel', 'scaling', 'dropout',
  'leave_out', 'use_gating', 'cross_adapter', 'inv_adapter', 'inv_adapter_reduction_factor', 'stochastic_depth', 'phm_layer', 'phm_dim',
  'factorized_phm_W', 'shared_W_phm', 'shared_phm_rule', 'factorized_phm_rule', 'phm_c_init', 'phm_init_range', 'learn_phm',
  'hypercomplex_nonlinearity', 'phm_rank', 'phm_bias',
];

/** A tensor as the safetensors header describes it. */
export interface TensorInfo {
  name: string;
  dtype: SafetensorsDtype;
  shape: number[];
}

/** One LoRA-wrapped module found in the file. */
export interface LoraModuleInfo {
  /** Dotted module name, without `base_model.model.` (`transformer.h.0.attn.c_attn`). */
  name: string;
  /** `linear` (lora_A / lora_B) or `embedding` (lora_embedding_A [r, vocab] / lora_embedding_B [dim, r]). */
  kind: 'linear' | 'embedding';
  rank: number;
  /** lora_A's columns (for an embedding: the vocabulary size). */
  inFeatures: number;
  /** lora_B's rows (for an embedding: its width). */
  outFeatures: number;
  /** True when the file holds a DoRA magnitude vector (`lora_magnitude_vector`) for the module. */
  dora: boolean;
}

/** One way in which an adapter does not fit a base model. */
export interface Mismatch {
  /** What does not fit: a module or tensor name, or a config field. */
  name: string;
  /** What the adapter needs. */
  expected: string;
  /** What the base has. */
  got: string;
  /** The whole explanation, in words. */
  message: string;
}

/** The result of the compatibility check against a base model. */
export interface CompatibilityReport {
  /** The base's source (folder or hub id). */
  base: string;
  compatible: boolean;
  /** Number of adapter modules / tensors checked against the base. */
  checked: number;
  mismatches: Mismatch[];
  /** Observations that do not prevent loading (another base named in the config, ...). */
  notes: string[];
}

/** What {@link inspectAdapter} found. */
export interface AdapterInspection {
  folder: string;
  /** `adapter`, or `model` for a model checkpoint (config.json + weights, no adapter config). */
  kind: 'adapter' | 'model';
  /** `hf-peft` (adapter_config.json + adapter_model.safetensors), `adapterhub` (AdapterHub bottleneck), `hf-model` (a checkpoint). */
  format: 'hf-peft' | 'adapterhub' | 'hf-model';
  /** HF PEFT's `peft_type` (`LORA`, `PROMPT_TUNING`, ...), `bottleneck` for AdapterHub folders, null for a model. */
  method: string | null;
  /** HF PEFT's `task_type` (null when the config has none); for a model, its task from `architectures`. */
  taskType: string | null;
  /** `base_model_name_or_path` (AdapterHub: `model_name`); for a model, its `_name_or_path`. */
  baseModel: string | null;
  /** `peft_version` when the config records it (PEFT 0.15+), AdapterHub's `version`; else null. */
  peftVersion: string | null;
  /** Target modules as the config gives them (a list, or a regular expression), null when not applicable. */
  targetModules: string[] | string | null;
  /** Elements in all tensors of the weights file (null when unreadable). */
  numParameters: number | null;
  /** Elements per part: the method's own tensors, `modules_to_save` copies, anything else. */
  parameterBreakdown: { adapter: number; modulesToSave: number; other: number } | null;
  numTensors: number;
  /** Size in bytes of the weights file. */
  fileBytes: number | null;
  /** Size in bytes of every file in the folder, subfolders included. */
  folderBytes: number;
  /** The weights file's name, when there is one. */
  weightsFile: string | null;
  /** Stored dtypes with tensor counts (`{F32: 72}`). */
  dtypes: Partial<Record<SafetensorsDtype, number>>;
  /** For sequence classification: rows of the saved head (`classifier.weight` [num_labels, hidden]). */
  numLabels: number | null;
  /** LoRA details. */
  lora?: {
    r: number;
    loraAlpha: number;
    /** lora_alpha / r (or / √r with use_rslora) for modules without a pattern. */
    scaling: number;
    useRslora: boolean;
    useDora: boolean;
    bias: string;
    fanInFanOut: boolean;
    loraDropout: number;
    rankPattern: Record<string, number>;
    alphaPattern: Record<string, number>;
    modulesToSave: string[] | null;
    modules: LoraModuleInfo[];
    /** Distinct layer indices of the wrapped modules. */
    layers: number[];
  };
  /** Prompt tuning, P-tuning and prefix tuning details. */
  prompt?: {
    numVirtualTokens: number | null;
    tokenDim: number | null;
    numTransformerSubmodules: number | null;
    numLayers: number | null;
    numAttentionHeads: number | null;
    init: string | null;
    initText: string | null;
    prefixProjection: boolean | null;
    encoderHiddenSize: number | null;
    /** Shape of `prompt_embeddings`. */
    tableShape: number[] | null;
  };
  /** AdapterHub bottleneck details. */
  bottleneck?: {
    name: string | null;
    /** `houlsby` (after attention and feed-forward), `pfeiffer` (after feed-forward), `parallel`, or `custom`. */
    preset: string;
    hiddenSize: number | null;
    reductionFactor: number | Record<string, number> | null;
    /** Units of the bottleneck (adapter_down's rows), per the tensors. */
    bottleneckSizes: number[];
    nonLinearity: string | null;
    mhAdapter: boolean | null;
    outputAdapter: boolean | null;
    isParallel: boolean | null;
    modelClass: string | null;
    modelType: string | null;
    layers: number[];
  };
  /** A model checkpoint's outline. */
  model?: { modelType: string; architectures: string[]; numLayers: number | null; hiddenSize: number | null; vocabSize: number | null };
  /** Config keys this reader does not know, with their values. */
  unknownConfigKeys: Record<string, unknown>;
  /** Tensors the config does not account for. */
  unexplainedTensors: string[];
  /** Anything unusual, in words. */
  notes: string[];
  /** Present when a base was given. */
  compatibility?: CompatibilityReport;
  tensors: TensorInfo[];
  /** A human-readable rendering of all the above. */
  text: string;
}

/** Options of {@link inspectAdapter}. */
export interface InspectOptions {
  /**
   * A base to check the adapter against: a loaded model, or a model folder / hub id already in the
   * local cache (only config.json and the safetensors headers are read).
   */
  base?: LoadedModel | string;
}

const prod = (s: number[]) => s.reduce((a, b) => a * b, 1);
const n = (x: number) => x.toLocaleString('en-US');
const isEmpty = (v: unknown) => v == null || v === false || v === '' || (Array.isArray(v) && v.length === 0) || (typeof v === 'object' && !Array.isArray(v) && Object.keys(v as object).length === 0);
const numOrNull = (v: unknown) => (typeof v === 'number' ? v : null);
const strOrNull = (v: unknown) => (typeof v === 'string' ? v : null);

function readJson(file: string): Record<string, unknown> {
  let v: unknown;
  try {
    v = JSON.parse(readFileSync(file, 'utf8'));
  } catch (e) {
    throw new UserError(`${file}: not valid JSON (${(e as Error).message})`, { file });
  }
  if (!v || typeof v !== 'object' || Array.isArray(v)) throw new UserError(`${file}: must hold a JSON object`, { file, pointer: '' });
  return v as Record<string, unknown>;
}

/** Module names with layer numbers folded: `transformer.h.N.attn.c_attn (12×)`. */
export function foldModuleNames(names: string[]): string {
  const counts = new Map<string, number>();
  for (const x of names) {
    const k = x.replace(/(^|\.)\d+(?=\.|$)/g, '$1N');
    counts.set(k, (counts.get(k) ?? 0) + 1);
  }
  return [...counts].map(([k, c]) => (c > 1 ? `${k} (${c}×)` : k)).join(', ');
}

/** The first layer index in a dotted name (`transformer.h.3.attn` → 3). */
function layerOf(name: string): number | undefined {
  const m = /(?:^|\.)(\d+)(?:\.|$)/.exec(name);
  return m ? Number(m[1]) : undefined;
}

/** HF's `target_modules` rule: a list entry matches the name or its `.`-suffix; a string must match the whole name. */
function targeted(targets: unknown, module: string): boolean {
  if (typeof targets === 'string') {
    if (targets === 'all-linear') return true;
    try {
      return new RegExp(`^(?:${targets})$`).test(module);
    } catch {
      return false;
    }
  }
  if (Array.isArray(targets)) return targets.some((t) => module === t || module.endsWith(`.${t}`));
  return false;
}

/** HF's pattern lookup (`get_pattern_key`): the first key whose regex matches the end of the name. */
function patternValue(pattern: Record<string, number>, module: string): number | undefined {
  for (const [k, v] of Object.entries(pattern)) {
    try {
      if (new RegExp(`(.*\\.)?(${k})$`).test(module)) return v;
    } catch {
      /* an invalid key is reported elsewhere */
    }
  }
  return undefined;
}

/** True when `key` lies under a module named `m` (dot boundaries), as HF's `modules_to_save` match. */
function underModule(key: string, m: string): boolean {
  return key.startsWith(`${m}.`) || key.includes(`.${m}.`);
}

// ---------------------------------------------------------------------------------------------
// The base model as shapes

interface BaseShapes {
  source: string;
  modelType: string;
  task: ModelTask | null;
  hiddenSize: number;
  numLayers: number;
  numKeyValueHeads: number;
  headDim: number;
  numLabels: number | null;
  /** Linear-like modules: name → features. */
  linear: Map<string, { inFeatures: number; outFeatures: number }>;
  /** Parameter name → shape. */
  params: Map<string, number[]>;
}

function configDims(c: ModelConfig): { hidden: number; layers: number; heads: number; kvHeads: number; headDim: number } {
  const num = (...keys: string[]) => {
    for (const k of keys) if (typeof c[k] === 'number') return c[k] as number;
    return NaN;
  };
  const hidden = num('hidden_size', 'n_embd', 'dim', 'd_model');
  const heads = num('num_attention_heads', 'n_head', 'n_heads');
  const kv = num('num_key_value_heads');
  const headDim = num('head_dim');
  return { hidden, layers: num('num_hidden_layers', 'n_layer', 'n_layers'), heads, kvHeads: Number.isNaN(kv) ? heads : kv, headDim: Number.isNaN(headDim) ? hidden / heads : headDim };
}

function numLabelsOf(c: ModelConfig): number | null {
  if (typeof c.num_labels === 'number') return c.num_labels;
  if (c.id2label && typeof c.id2label === 'object') return Object.keys(c.id2label).length;
  return null;
}

function shapesOfLoaded(loaded: LoadedModel): BaseShapes {
  const m = loaded.model;
  const d = m.dims();
  const linear = new Map<string, { inFeatures: number; outFeatures: number }>();
  for (const [name, mod] of m.namedModules()) {
    const x = mod as unknown as { inFeatures?: unknown; outFeatures?: unknown };
    if (name && Number.isInteger(x.inFeatures) && Number.isInteger(x.outFeatures)) linear.set(name, { inFeatures: x.inFeatures as number, outFeatures: x.outFeatures as number });
  }
  const params = new Map<string, number[]>();
  for (const [k, v] of m.stateDict()) params.set(k, v.shape);
  return {
    source: loaded.source, modelType: m.config.model_type, task: m.task, hiddenSize: d.hiddenSize, numLayers: d.numLayers,
    numKeyValueHeads: d.numKeyValueHeads, headDim: d.headDim, numLabels: m.task === 'sequence-classification' ? numLabelsOf(m.config) : null, linear, params,
  };
}

async function shapesOfFolder(source: string): Promise<BaseShapes> {
  const { folder } = await resolveModelSource(source, { offline: true });
  const configFile = join(folder, 'config.json');
  if (!existsSync(configFile)) throw new UserError(`${folder}: no config.json, so it is not a model folder to check the adapter against`, { file: configFile, hint: 'give the base model\'s folder (config.json + model.safetensors)' });
  const config = readJson(configFile) as ModelConfig;
  const params = new Map<string, number[]>();
  for (const f of weightFiles(folder).files) for (const [k, e] of Object.entries(readSafetensorsHeader(f).tensors)) params.set(k, e.shape);
  const conv1d = config.model_type === 'gpt2';
  const linear = new Map<string, { inFeatures: number; outFeatures: number }>();
  for (const [k, s] of params) {
    if (!k.endsWith('.weight') || s.length !== 2 || /(^|\.)(wte|wpe|embed_tokens|word_embeddings|position_embeddings|token_type_embeddings)\.weight$/.test(k)) continue;
    const mod = k.slice(0, -'.weight'.length);
    // GPT-2's Conv1D stores [in, out]; nn.Linear [out, in].
    const isConv1d = conv1d && /(^|\.)(c_attn|c_proj|c_fc|q_attn)$/.test(mod);
    linear.set(mod, isConv1d ? { inFeatures: s[0], outFeatures: s[1] } : { inFeatures: s[1], outFeatures: s[0] });
  }
  const d = configDims(config);
  const task = inferTask(config);
  return { source, modelType: config.model_type, task, hiddenSize: d.hidden, numLayers: d.layers, numKeyValueHeads: d.kvHeads, headDim: d.headDim, numLabels: task === 'sequence-classification' ? numLabelsOf(config) : null, linear, params };
}

/** The base's name for an adapter's module or tensor name (with or without the bare model's prefix). */
function inBase<T>(map: Map<string, T>, name: string): string | undefined {
  if (map.has(name)) return name;
  for (const p of BASE_PREFIXES) if (map.has(`${p}.${name}`)) return `${p}.${name}`;
  for (const p of BASE_PREFIXES) if (name.startsWith(`${p}.`) && map.has(name.slice(p.length + 1))) return name.slice(p.length + 1);
  return undefined;
}

// ---------------------------------------------------------------------------------------------

/**
 * Describes an adapter folder: method, task, ranks and targets (LoRA), virtual tokens (prompt
 * learning), bottleneck sizes (AdapterHub), parameter count, file size, base model, PEFT version,
 * dtypes, and anything unusual (unknown config keys, tensors the config does not explain, mixed
 * dtypes, duplicated `modules_to_save` entries, ...). With `opts.base`, also checks that every
 * LoRA tensor's module exists in the base with matching in/out features (and saved heads' shapes),
 * that a prompt's token_dim equals the base's hidden size (prefix tuning: layers × key/value width),
 * and that a bottleneck adapter's hidden_size matches; each mismatch is explained in words.
 *
 * Reads the config and the safetensors header only. A model checkpoint folder (config.json and
 * weights, no adapter_config.json) is reported as `kind: "model"`.
 * @returns the summary, with `text` its rendering.
 * @throws UserError when the folder does not exist or is neither an adapter nor a model folder
 *   (naming subfolders that hold adapters), or a JSON file in it is invalid.
 */
export async function inspectAdapter(folder: string, opts: InspectOptions = {}): Promise<AdapterInspection> {
  if (!existsSync(folder) || !statSync(folder).isDirectory()) throw new UserError(`${folder}: folder not found`, { file: folder, hint: 'give the folder that holds adapter_config.json' });
  const files = readdirSync(folder);
  const subAdapters = files.filter((f) => statSync(join(folder, f)).isDirectory() && existsSync(join(folder, f, HF_ADAPTER_CONFIG)));
  let ins: AdapterInspection;
  if (existsSync(join(folder, HF_ADAPTER_CONFIG))) ins = inspectAdapterFolder(folder);
  else if (existsSync(join(folder, 'config.json'))) ins = inspectModelFolder(folder);
  else {
    throw new UserError(`${folder}: neither an adapter folder (no ${HF_ADAPTER_CONFIG}) nor a model folder (no config.json); it holds: ${files.join(', ') || 'nothing'}`, {
      file: folder,
      hint: subAdapters.length ? `named adapters are in subfolders: ${subAdapters.join(', ')}` : 'give the folder that holds adapter_config.json',
    });
  }
  for (const s of subAdapters) ins.notes.push(`subfolder ${s}/ holds another adapter (${s.startsWith('checkpoint-') ? 'a training checkpoint' : 'a named adapter'}); inspect it separately`);
  const trainerState = join(folder, 'trainer_state.json');
  if (existsSync(trainerState)) {
    try {
      const st = readJson(trainerState);
      ins.notes.push(`trainer_state.json: a Trainer checkpoint at step ${st.global_step ?? '?'}${typeof st.max_steps === 'number' ? ` of ${st.max_steps}` : ''}${typeof st.epoch === 'number' ? `, epoch ${Math.round(st.epoch * 100) / 100}` : ''}`);
    } catch {
      ins.notes.push('trainer_state.json is not valid JSON');
    }
  }
  if (opts.base !== undefined) {
    if (ins.kind === 'model') ins.notes.push('no compatibility check: the folder is a model, not an adapter');
    else {
      const base = typeof opts.base === 'string' ? await shapesOfFolder(opts.base) : shapesOfLoaded(opts.base);
      ins.compatibility = checkCompatibility(ins, base);
    }
  }
  ins.text = renderInspection(ins);
  return ins;
}

function emptyInspection(folder: string, kind: AdapterInspection['kind'], format: AdapterInspection['format']): AdapterInspection {
  return {
    folder, kind, format, method: null, taskType: null, baseModel: null, peftVersion: null, targetModules: null, numParameters: null, parameterBreakdown: null,
    numTensors: 0, fileBytes: null, folderBytes: folderBytes(folder), weightsFile: null, dtypes: {}, numLabels: null, unknownConfigKeys: {}, unexplainedTensors: [],
    notes: [], tensors: [], text: '',
  };
}

/** Reads the header of `file` into `ins` (tensors, dtypes, sizes); an unreadable file becomes a note. */
function readTensors(ins: AdapterInspection, file: string): void {
  ins.weightsFile = basename(file);
  ins.fileBytes = statSync(file).size;
  try {
    const h = readSafetensorsHeader(file);
    ins.tensors = Object.entries(h.tensors).map(([name, e]) => ({ name, dtype: e.dtype, shape: e.shape }));
  } catch (e) {
    ins.notes.push(`${basename(file)} cannot be read: ${(e as Error).message}`);
    return;
  }
  ins.numTensors = ins.tensors.length;
  ins.numParameters = ins.tensors.reduce((s, t) => s + prod(t.shape), 0);
  for (const t of ins.tensors) ins.dtypes[t.dtype] = (ins.dtypes[t.dtype] ?? 0) + 1;
  const dts = Object.keys(ins.dtypes);
  if (dts.length > 1) ins.notes.push(`mixed dtypes: ${Object.entries(ins.dtypes).map(([d, c]) => `${c} ${d}`).join(', ')}`);
  const low = dts.filter((d) => d !== 'F32');
  if (low.length) ins.notes.push(`stored as ${low.join(', ')}; peftkit computes in float32 and upcasts on load`);
}

function inspectModelFolder(folder: string): AdapterInspection {
  const ins = emptyInspection(folder, 'model', 'hf-model');
  const config = readJson(join(folder, 'config.json')) as ModelConfig;
  let weights: string | undefined;
  try {
    const wf = weightFiles(folder);
    weights = wf.files[0];
    if (wf.files.length > 1) ins.notes.push(`sharded checkpoint: ${wf.files.length} files`);
  } catch (e) {
    ins.notes.push((e as Error).message);
  }
  if (weights) readTensors(ins, weights);
  const d = configDims(config);
  const archs = Array.isArray(config.architectures) ? config.architectures : [];
  ins.taskType = typeof config.model_type === 'string' ? inferTask(config) : null;
  ins.baseModel = strOrNull(config._name_or_path);
  ins.model = {
    modelType: String(config.model_type), architectures: archs, numLayers: Number.isNaN(d.layers) ? null : d.layers,
    hiddenSize: Number.isNaN(d.hidden) ? null : d.hidden, vocabSize: numOrNull(config.vocab_size),
  };
  ins.notes.unshift(`this is a model checkpoint (${ins.model.modelType}${archs.length ? `, ${archs.join(', ')}` : ''}), not an adapter: it has config.json and weights but no ${HF_ADAPTER_CONFIG}; use it as the base model`);
  return ins;
}

function inspectAdapterFolder(folder: string): AdapterInspection {
  const cfgFile = join(folder, HF_ADAPTER_CONFIG);
  const cfg = readJson(cfgFile);
  const adapterHub = !('peft_type' in cfg) && 'config' in cfg;
  const ins = emptyInspection(folder, 'adapter', adapterHub ? 'adapterhub' : 'hf-peft');
  const weights = join(folder, adapterHub ? ADAPTERHUB_WEIGHTS : HF_ADAPTER_WEIGHTS);
  const pickle = join(folder, adapterHub ? ADAPTERHUB_PICKLE : HF_ADAPTER_PICKLE);
  if (existsSync(weights)) readTensors(ins, weights);
  else if (existsSync(pickle)) ins.notes.push(`the weights are only in ${basename(pickle)}, a PyTorch pickle, which peftkit does not load (a pickle can execute code); convert it to safetensors`);
  else ins.notes.push(`no weights file: ${basename(weights)} is missing`);
  if (adapterHub) inspectAdapterHub(ins, cfg);
  else inspectHfPeft(ins, cfg);
  return ins;
}

function unknownKeys(ins: AdapterInspection, cfg: Record<string, unknown>, known: string[]): void {
  for (const [k, v] of Object.entries(cfg)) if (!known.includes(k)) ins.unknownConfigKeys[k] = v;
  const keys = Object.keys(ins.unknownConfigKeys);
  if (!keys.length) return;
  const harmless = keys.filter((k) => isEmpty(ins.unknownConfigKeys[k]));
  const set = keys.filter((k) => !harmless.includes(k));
  if (harmless.length) ins.notes.push(`config keys this reader does not know, all null, false or empty (likely from a newer PEFT, harmless): ${harmless.join(', ')}`);
  if (set.length) ins.notes.push(`config keys this reader does not know, with values: ${set.map((k) => `${k} = ${JSON.stringify(ins.unknownConfigKeys[k])}`).join('; ')}; the adapter may rely on a feature peftkit lacks`);
}

function inspectHfPeft(ins: AdapterInspection, cfg: Record<string, unknown>): void {
  const type = strOrNull(cfg.peft_type);
  ins.method = type;
  ins.taskType = strOrNull(cfg.task_type);
  ins.baseModel = strOrNull(cfg.base_model_name_or_path);
  ins.peftVersion = strOrNull(cfg.peft_version);
  if (type === null) ins.notes.push(`${HF_ADAPTER_CONFIG} has no peft_type`);
  if (type === 'LORA') return inspectLora(ins, cfg);
  if (type === 'PROMPT_TUNING' || type === 'P_TUNING' || type === 'PREFIX_TUNING') return inspectPrompt(ins, cfg, type);
  // Methods from plugins (IA3 in @peftkit/ia3, or a third party's) load and serve, but this
  // inspector, which knows no plugin, describes only the built-in layouts in detail.
  ins.notes.push(`peft_type ${JSON.stringify(type)}: inspect describes LORA, PROMPT_TUNING, P_TUNING and PREFIX_TUNING adapters in detail; only an outline is shown (\`peftkit plugins\` lists the methods installed plugins load)`);
  ins.parameterBreakdown = ins.numParameters === null ? null : { adapter: ins.numParameters, modulesToSave: 0, other: 0 };
}

function inspectLora(ins: AdapterInspection, cfg: Record<string, unknown>): void {
  unknownKeys(ins, cfg, [...PEFT_CONFIG_FIELDS, ...LORA_FIELDS]);
  const r = numOrNull(cfg.r) ?? 8;
  const alpha = numOrNull(cfg.lora_alpha) ?? 8;
  const useRslora = cfg.use_rslora === true;
  const rankPattern = (cfg.rank_pattern && typeof cfg.rank_pattern === 'object' ? cfg.rank_pattern : {}) as Record<string, number>;
  const alphaPattern = (cfg.alpha_pattern && typeof cfg.alpha_pattern === 'object' ? cfg.alpha_pattern : {}) as Record<string, number>;
  const mts = Array.isArray(cfg.modules_to_save) ? (cfg.modules_to_save as string[]) : null;
  ins.targetModules = Array.isArray(cfg.target_modules) || typeof cfg.target_modules === 'string' ? (cfg.target_modules as string[] | string) : null;
  if (ins.taskType === null) ins.notes.push('task_type is null: HF PEFT builds a plain PeftModel; peftkit uses the base model\'s own task');
  if (mts) {
    const dup = [...new Set(mts.filter((m, i) => mts.indexOf(m) !== i))];
    if (dup.length) ins.notes.push(`modules_to_save lists ${dup.map((d) => `${d} ${mts.filter((m) => m === d).length} times`).join(', ')} (HF PEFT adds the task's head to the list again; harmless)`);
  }

  const byModule = new Map<string, { A?: TensorInfo; B?: TensorInfo; kind: 'linear' | 'embedding' }>();
  const unexplained: string[] = [];
  const tables: string[] = [];
  const dora = new Map<string, TensorInfo>();
  const named = new Set<string>();
  let unprefixed = 0;
  const bd = { adapter: 0, modulesToSave: 0, other: 0 };
  const mtsUsed = new Set<string>();
  for (const t of ins.tensors) {
    let key = t.name;
    if (key.startsWith(HF_PREFIX)) key = key.slice(HF_PREFIX.length);
    else unprefixed++;
    const size = prod(t.shape);
    const lora = /^(.*)\.(lora_A|lora_B)(?:\.([^.]+))?\.weight$/.exec(key) ?? /^(.*)\.(lora_embedding_A|lora_embedding_B)(?:\.([^.]+))?$/.exec(key);
    if (lora) {
      const kind = lora[2].startsWith('lora_embedding') ? 'embedding' : 'linear';
      const e = byModule.get(lora[1]) ?? { kind };
      e[lora[2].endsWith('A') ? 'A' : 'B'] = t;
      byModule.set(lora[1], e);
      if (lora[3]) named.add(lora[3]);
      bd.adapter += size;
      continue;
    }
    // DoRA: peft 0.21 saves `<module>.lora_magnitude_vector`; in-memory state dicts say `.lora_magnitude_vector.default.weight`.
    const mag = /^(.*)\.lora_magnitude_vector(?:\.([^.]+))?(?:\.weight)?$/.exec(key);
    if (mag) {
      dora.set(mag[1], t);
      if (mag[2] && mag[2] !== 'weight') named.add(mag[2]);
      bd.adapter += size;
      continue;
    }
    // HF's save_embedding_layers: the whole table of an embedding (or head) wrapped by LoRA.
    if (/\.base_layer\.weight$/.test(key) && /(^|\.)(embed_tokens|lm_head)$/.test(key.slice(0, -'.base_layer.weight'.length))) {
      tables.push(t.name);
      bd.other += size;
      continue;
    }
    const owner = mts?.find((m) => underModule(key, m));
    if (owner) {
      mtsUsed.add(owner);
      bd.modulesToSave += size;
      continue;
    }
    if (cfg.bias !== 'none' && cfg.bias != null && key.endsWith('.bias')) {
      bd.adapter += size;
      continue;
    }
    unexplained.push(t.name);
    bd.other += size;
  }
  if (ins.numParameters !== null) ins.parameterBreakdown = bd;
  if (unprefixed && unprefixed < ins.tensors.length) ins.notes.push(`${unprefixed} of ${ins.tensors.length} tensor names lack the base_model.model. prefix`);
  else if (unprefixed && ins.tensors.length) ins.notes.push('tensor names lack the base_model.model. prefix (peftkit accepts that)');
  if (named.size) ins.notes.push(`tensor names carry the adapter name (${[...named].join(', ')}), as in-memory state dicts do; HF PEFT's files leave it out`);
  if (tables.length) ins.notes.push(`whole base tables saved with the adapter (${tables.join(', ')}): HF PEFT saves them when embed_tokens / lm_head is a target; loading overwrites the base's (and resizes it when the adapter added tokens)`);
  if (dora.size && cfg.use_dora !== true) ins.notes.push(`DoRA magnitude vectors (${dora.size}) but use_dora is not true: the config and the tensors disagree`);
  if (mts) {
    const unused = [...new Set(mts)].filter((m) => !mtsUsed.has(m));
    if (unused.length) ins.notes.push(`modules_to_save entries with no tensor in the file: ${unused.join(', ')} (HF PEFT lists the head names of several architectures; harmless)`);
  }

  const modules: LoraModuleInfo[] = [];
  const natural = [...byModule].sort(([a], [b]) => a.localeCompare(b, 'en', { numeric: true }));
  for (const [name, { A, B, kind }] of natural) {
    const part = (x: 'A' | 'B') => (kind === 'embedding' ? `lora_embedding_${x}` : `lora_${x}`);
    if (!A || !B) {
      ins.notes.push(`${name} has ${part(A ? 'A' : 'B')} but no ${part(A ? 'B' : 'A')}`);
      unexplained.push(`${HF_PREFIX}${name}.${part(A ? 'A' : 'B')}${kind === 'embedding' ? '' : '.weight'}`);
      continue;
    }
    const m = dora.get(name);
    const info: LoraModuleInfo = { name, kind, rank: A.shape[0], inFeatures: A.shape[1], outFeatures: B.shape[0], dora: m !== undefined };
    modules.push(info);
    dora.delete(name);
    if (m && (m.shape.length !== 1 || m.shape[0] !== info.outFeatures)) ins.notes.push(`${name}: lora_magnitude_vector is [${m.shape.join(', ')}] but the module has ${info.outFeatures} output features`);
    if (!m && cfg.use_dora === true) ins.notes.push(`${name}: use_dora is true but the file has no lora_magnitude_vector for it`);
    if (B.shape[1] !== A.shape[0]) ins.notes.push(`${name}: lora_A has rank ${A.shape[0]} but lora_B [${B.shape.join(', ')}] has ${B.shape[1]} columns`);
    const want = patternValue(rankPattern, name) ?? r;
    if (info.rank !== want) ins.notes.push(`${name}: rank ${info.rank} in the file, but the config says ${want}${patternValue(rankPattern, name) !== undefined ? ' (rank_pattern)' : ' (r)'}`);
    if (ins.targetModules !== null && !targeted(ins.targetModules, name)) ins.notes.push(`${name} has LoRA tensors but target_modules ${JSON.stringify(ins.targetModules)} does not name it`);
  }
  for (const name of dora.keys()) unexplained.push(`${HF_PREFIX}${name}.lora_magnitude_vector`);
  ins.unexplainedTensors = unexplained;
  if (unexplained.length) ins.notes.push(`tensors the config does not explain (not LoRA, not in modules_to_save): ${unexplained.slice(0, 5).join(', ')}${unexplained.length > 5 ? `, ... ${unexplained.length} in all` : ''}`);
  const headRows = ins.tensors
    .filter((t) => t.shape.length === 2 && /(^|\.)(classifier|score)\.weight$/.test(t.name) && mts?.some((m) => underModule(t.name.replace(HF_PREFIX, ''), m) || t.name.replace(HF_PREFIX, '') === `${m}.weight`))
    .map((t) => t.shape[0]);
  if (headRows.length) ins.numLabels = headRows[headRows.length - 1];
  const layers = [...new Set(modules.map((m) => layerOf(m.name)).filter((x): x is number => x !== undefined))].sort((a, b) => a - b);
  ins.lora = {
    r, loraAlpha: alpha, scaling: useRslora ? alpha / Math.sqrt(r) : alpha / r, useRslora, useDora: cfg.use_dora === true, bias: String(cfg.bias ?? 'none'),
    fanInFanOut: cfg.fan_in_fan_out === true, loraDropout: numOrNull(cfg.lora_dropout) ?? 0, rankPattern, alphaPattern, modulesToSave: mts, modules, layers,
  };
}

function inspectPrompt(ins: AdapterInspection, cfg: Record<string, unknown>, type: string): void {
  unknownKeys(ins, cfg, [...PEFT_CONFIG_FIELDS, ...PROMPT_FIELDS]);
  const nvt = numOrNull(cfg.num_virtual_tokens);
  const tokenDim = numOrNull(cfg.token_dim);
  const subs = numOrNull(cfg.num_transformer_submodules);
  const numLayers = numOrNull(cfg.num_layers);
  const table = ins.tensors.find((t) => t.name === 'prompt_embeddings');
  ins.prompt = {
    numVirtualTokens: nvt, tokenDim, numTransformerSubmodules: subs, numLayers, numAttentionHeads: numOrNull(cfg.num_attention_heads),
    init: strOrNull(cfg.prompt_tuning_init), initText: strOrNull(cfg.prompt_tuning_init_text),
    prefixProjection: typeof cfg.prefix_projection === 'boolean' ? cfg.prefix_projection : null, encoderHiddenSize: numOrNull(cfg.encoder_hidden_size),
    tableShape: table ? table.shape : null,
  };
  const others = ins.tensors.filter((t) => t.name !== 'prompt_embeddings');
  ins.unexplainedTensors = others.map((t) => t.name);
  if (others.length) ins.notes.push(`tensors besides prompt_embeddings that ${type} does not explain: ${others.map((t) => t.name).join(', ')}`);
  if (ins.numParameters !== null) ins.parameterBreakdown = { adapter: table ? prod(table.shape) : 0, modulesToSave: 0, other: others.reduce((s, t) => s + prod(t.shape), 0) };
  if (!table) {
    if (ins.tensors.length) ins.notes.push('no prompt_embeddings tensor');
    return;
  }
  // HF's prompt encoder holds num_virtual_tokens × num_transformer_submodules rows.
  const rows = nvt === null ? null : nvt * (subs ?? 1);
  const width = type === 'PREFIX_TUNING' ? (numLayers !== null && tokenDim !== null ? numLayers * 2 * tokenDim : null) : tokenDim;
  if (table.shape.length !== 2) ins.notes.push(`prompt_embeddings is [${table.shape.join(', ')}], not a 2-D table`);
  else {
    if (rows !== null && table.shape[0] !== rows) ins.notes.push(`prompt_embeddings has ${table.shape[0]} rows but num_virtual_tokens × num_transformer_submodules = ${rows}`);
    if (width !== null && table.shape[1] !== width) {
      ins.notes.push(`prompt_embeddings is ${table.shape[1]} wide but the config says ${type === 'PREFIX_TUNING' ? `num_layers × 2 × token_dim = ${width}` : `token_dim = ${width}`}`);
    }
  }
}

function inspectAdapterHub(ins: AdapterInspection, cfg: Record<string, unknown>): void {
  ins.method = 'bottleneck';
  unknownKeys(ins, cfg, ADAPTERHUB_TOP);
  const name = strOrNull(cfg.name);
  ins.baseModel = strOrNull(cfg.model_name);
  ins.peftVersion = strOrNull(cfg.version);
  const c = cfg.config;
  const bn = (c && typeof c === 'object' ? c : {}) as Record<string, unknown>;
  if (typeof c === 'string') ins.notes.push(`config is the named preset "${c}" (AdapterHub's ADAPTER_CONFIG_MAP)`);
  else {
    const extra = Object.keys(bn).filter((k) => !BN_FIELDS.includes(k));
    if (extra.length) ins.notes.push(`BnConfig keys this reader does not know: ${extra.map((k) => `${k} = ${JSON.stringify(bn[k])}`).join('; ')}`);
    if (bn.architecture != null && bn.architecture !== 'bottleneck') ins.notes.push(`config.architecture is "${String(bn.architecture)}", not a bottleneck adapter`);
    for (const k of ['use_gating', 'phm_layer', 'cross_adapter']) if (bn[k] === true) ins.notes.push(`config.${k} is true, which peftkit does not implement`);
  }
  const isParallel = typeof c === 'string' ? /par/.test(c) : bn.is_parallel === true;
  const mh = typeof c === 'string' ? /houlsby|double/.test(c) : bn.mh_adapter === true;
  const out = typeof c === 'string' ? true : bn.output_adapter !== false;
  const preset = isParallel ? 'parallel' : mh && out ? 'houlsby' : !mh && out ? 'pfeiffer' : 'custom';
  const marker = name ? `.adapters.${name}.` : '.adapters.';
  const own = ins.tensors.filter((t) => t.name.includes(marker));
  const others = ins.tensors.filter((t) => !t.name.includes(marker));
  ins.unexplainedTensors = others.map((t) => t.name);
  if (others.length) ins.notes.push(`tensors outside the adapter "${name}": ${others.slice(0, 5).map((t) => t.name).join(', ')}${others.length > 5 ? `, ... ${others.length} in all` : ''}`);
  if (ins.numParameters !== null) ins.parameterBreakdown = { adapter: own.reduce((s, t) => s + prod(t.shape), 0), modulesToSave: 0, other: others.reduce((s, t) => s + prod(t.shape), 0) };
  const downs = own.filter((t) => /\.adapter_down\.0\.weight$/.test(t.name));
  const hidden = numOrNull(cfg.hidden_size);
  for (const t of downs) if (hidden !== null && t.shape[1] !== hidden) ins.notes.push(`${t.name} reads ${t.shape[1]} features but hidden_size is ${hidden}`);
  ins.bottleneck = {
    name, preset, hiddenSize: hidden,
    reductionFactor: typeof bn.reduction_factor === 'number' || (bn.reduction_factor && typeof bn.reduction_factor === 'object') ? (bn.reduction_factor as number | Record<string, number>) : null,
    bottleneckSizes: [...new Set(downs.map((t) => t.shape[0]))].sort((a, b) => a - b),
    nonLinearity: strOrNull(bn.non_linearity), mhAdapter: typeof c === 'string' ? mh : typeof bn.mh_adapter === 'boolean' ? bn.mh_adapter : null,
    outputAdapter: typeof c === 'string' ? out : typeof bn.output_adapter === 'boolean' ? bn.output_adapter : null, isParallel,
    modelClass: strOrNull(cfg.model_class), modelType: strOrNull(cfg.model_type),
    layers: [...new Set(downs.map((t) => layerOf(t.name)).filter((x): x is number => x !== undefined))].sort((a, b) => a - b),
  };
  if (ins.tensors.length && !downs.length) ins.notes.push(`no adapter_down weights for an adapter named "${name}"`);
  inspectAdapterHubHead(ins);
}

/**
 * A prediction head beside an AdapterHub adapter: a classifier's head (`score.weight`, ...) makes
 * it a SEQ_CLS adapter of `num_labels` (else the head weight's rows) labels, as `classify` needs.
 */
function inspectAdapterHubHead(ins: AdapterInspection): void {
  const weights = join(ins.folder, ADAPTERHUB_HEAD_WEIGHTS);
  if (!existsSync(weights)) return;
  const cfgFile = join(ins.folder, ADAPTERHUB_HEAD_CONFIG);
  const cfg = existsSync(cfgFile) ? readJson(cfgFile) : {};
  const tensors = Object.entries(readSafetensorsHeader(weights).tensors);
  const rows = tensors.filter(([k, e]) => k.endsWith('.weight') && e.shape.length === 2).map(([, e]) => e.shape[0]);
  const modelClass = strOrNull(cfg.model_class);
  ins.numLabels = numOrNull(cfg.num_labels) ?? (rows.length ? rows[rows.length - 1] : null);
  if (modelClass?.endsWith('ForSequenceClassification') || (!modelClass && ins.numLabels !== null)) ins.taskType = 'SEQ_CLS';
  const elements = tensors.reduce((s, [, e]) => s + prod(e.shape), 0);
  ins.notes.push(`prediction head in ${ADAPTERHUB_HEAD_WEIGHTS}${modelClass ? ` (${modelClass})` : ''}: ${tensors.map(([k, e]) => `${k} [${e.shape.join(', ')}]`).join(', ')}, ${n(elements)} parameters`);
}

// ---------------------------------------------------------------------------------------------

function checkCompatibility(ins: AdapterInspection, base: BaseShapes): CompatibilityReport {
  const mismatches: Mismatch[] = [];
  const notes: string[] = [];
  let checked = 0;
  const add = (name: string, expected: string, got: string, message: string) => mismatches.push({ name, expected, got, message });
  // peftkit's exports name a local base relative to the adapter folder (`../models/base`).
  const named = ins.baseModel && /^\.\.?\//.test(ins.baseModel) ? resolve(ins.folder, ins.baseModel) : ins.baseModel;
  if (named && named !== base.source) notes.push(`the adapter was trained on ${ins.baseModel}; checking against ${base.source}`);

  if (ins.lora) {
    const missingLayers = new Set<number>();
    for (const m of ins.lora.modules) {
      checked++;
      if (m.kind === 'embedding') {
        const key = inBase(base.params, `${m.name}.weight`);
        const shape = key ? base.params.get(key)! : undefined;
        if (!shape || shape.length !== 2) {
          add(m.name, 'an embedding of this name', 'none', `${m.name}: the base has no such embedding`);
          continue;
        }
        if (shape[1] !== m.outFeatures) add(m.name, `${m.outFeatures} wide`, `${shape[1]}`, `${m.name}: lora_embedding_B is [${m.outFeatures}, ${m.rank}], so the adapter expects embeddings ${m.outFeatures} wide, but the base's are ${shape[1]}`);
        if (shape[0] !== m.inFeatures) {
          const table = ins.tensors.some((t) => t.name === `${HF_PREFIX}${m.name}.base_layer.weight` && t.shape[0] === m.inFeatures);
          if (table) notes.push(`${m.name}: the adapter's vocabulary has ${m.inFeatures} tokens, the base's ${shape[0]}; loading resizes the base to the saved table (added tokens)`);
          else add(m.name, `a vocabulary of ${m.inFeatures}`, `${shape[0]}`, `${m.name}: lora_embedding_A is [${m.rank}, ${m.inFeatures}], so the adapter expects ${m.inFeatures} tokens, but the base's vocabulary has ${shape[0]} and the file holds no table to resize it with`);
        }
        continue;
      }
      const at = inBase(base.linear, m.name);
      if (!at) {
        const layer = layerOf(m.name);
        if (layer !== undefined && layer >= base.numLayers) missingLayers.add(layer);
        add(m.name, 'a linear layer of this name', 'none', `${m.name}: the base has no such linear layer${layer !== undefined && layer >= base.numLayers ? ` (the adapter wraps layer ${layer}; the base has ${base.numLayers === 1 ? 'only layer 0' : `layers 0-${base.numLayers - 1}`})` : ''}`);
        continue;
      }
      const f = base.linear.get(at)!;
      if (f.inFeatures !== m.inFeatures) add(m.name, `${m.inFeatures} input features`, `${f.inFeatures}`, `${m.name}: lora_A is [${m.rank}, ${m.inFeatures}], so the adapter expects ${m.inFeatures} input features, but the base's layer takes ${f.inFeatures}`);
      if (f.outFeatures !== m.outFeatures) add(m.name, `${m.outFeatures} output features`, `${f.outFeatures}`, `${m.name}: lora_B is [${m.outFeatures}, ${m.rank}], so the adapter expects ${m.outFeatures} output features, but the base's layer gives ${f.outFeatures}`);
    }
    if (missingLayers.size) notes.push(`the adapter has modules in layers ${ins.lora.layers[0]}-${ins.lora.layers[ins.lora.layers.length - 1]}; the base has ${base.numLayers}`);
    for (const t of ins.tensors) {
      const key = t.name.startsWith(HF_PREFIX) ? t.name.slice(HF_PREFIX.length) : t.name;
      if (!ins.lora.modulesToSave?.some((m) => underModule(key, m))) continue;
      checked++;
      const at = inBase(base.params, key);
      if (!at) {
        const head = /(^|\.)(classifier|score|pre_classifier)\./.test(key);
        add(key, `a tensor [${t.shape.join(', ')}]`, 'none', `${key} (modules_to_save): the base has no such tensor${head ? ` (a ${ins.taskType === 'SEQ_CLS' ? 'sequence-classification' : 'task'} head: load the base with task sequence-classification${ins.numLabels ? ` and num_labels ${ins.numLabels}` : ''})` : ''}`);
        continue;
      }
      const s = base.params.get(at)!;
      // Added tokens: an embedding or LM head of a larger vocabulary, with an embedding table of that
      // size in the file, is resized on load (@peftkit/lora's loadHfLoraAdapter, resizeTokenEmbeddings).
      const resized = /(^|\.)(embed_tokens|lm_head)\.weight$/.test(key) && t.shape.length === 2 && s.length === 2 && t.shape[1] === s[1] && t.shape[0] > s[0]
        && ins.tensors.some((x) => /(^|\.)embed_tokens\.(base_layer\.)?weight$/.test(x.name) && x.shape[0] === t.shape[0]);
      if (resized) notes.push(`${key} (modules_to_save): ${t.shape[0]} rows, the base's ${s[0]}; loading resizes the base's vocabulary to the adapter's (added tokens)`);
      else if (s.join(',') !== t.shape.join(',')) {
        add(key, `[${t.shape.join(', ')}]`, `[${s.join(', ')}]`, `${key} (modules_to_save): the adapter saved [${t.shape.join(', ')}] but the base's is [${s.join(', ')}]${/(classifier|score)\.weight$/.test(key) ? ` (the adapter's head has ${t.shape[0]} labels, the base's ${s[0]})` : ''}`);
      }
    }
    if (ins.taskType === 'SEQ_CLS' && base.task !== 'sequence-classification') add('task_type', 'a sequence-classification model', String(base.task), `task_type is SEQ_CLS but the base is loaded as a ${base.task} model: load it with task sequence-classification${ins.numLabels ? ` and num_labels ${ins.numLabels}` : ''}`);
    if (ins.taskType === 'CAUSAL_LM' && base.task !== 'causal-lm') add('task_type', 'a causal-lm model', String(base.task), `task_type is CAUSAL_LM but the base is loaded as a ${base.task} model: load it with task causal-lm`);
  }

  if (ins.prompt) {
    const p = ins.prompt;
    checked++;
    if (ins.method === 'PREFIX_TUNING') {
      const kv = base.numKeyValueHeads * base.headDim;
      if (p.numLayers !== null && p.numLayers !== base.numLayers) add('num_layers', `${p.numLayers} layers`, `${base.numLayers}`, `num_layers is ${p.numLayers} but the base has ${base.numLayers} layers`);
      if (p.tokenDim !== null && p.tokenDim !== kv && p.tokenDim !== base.hiddenSize) add('token_dim', `keys/values ${p.tokenDim} wide`, `${kv}`, `token_dim is ${p.tokenDim} but the base's keys and values are ${base.numKeyValueHeads} heads × ${base.headDim} = ${kv} wide`);
      const want = base.numLayers * 2 * kv;
      if (p.tableShape && p.tableShape[1] !== want) add('prompt_embeddings', `${p.tableShape[1]} columns`, `${want}`, `prompt_embeddings is [${p.tableShape.join(', ')}] but the base needs ${want} columns (${base.numLayers} layers × 2 × ${kv})`);
    } else {
      if (p.tokenDim !== null && p.tokenDim !== base.hiddenSize) add('token_dim', `hidden size ${p.tokenDim}`, `${base.hiddenSize}`, `token_dim is ${p.tokenDim} but the base's hidden size (its embedding width) is ${base.hiddenSize}`);
      if (p.tableShape && p.tableShape[1] !== base.hiddenSize && p.tableShape[1] !== p.tokenDim) add('prompt_embeddings', `${p.tableShape[1]} columns`, `${base.hiddenSize}`, `prompt_embeddings is [${p.tableShape.join(', ')}] but the base's embeddings are ${base.hiddenSize} wide`);
    }
  }

  if (ins.bottleneck) {
    const b = ins.bottleneck;
    checked++;
    if (b.hiddenSize !== null && b.hiddenSize !== base.hiddenSize) add('hidden_size', `hidden size ${b.hiddenSize}`, `${base.hiddenSize}`, `hidden_size is ${b.hiddenSize} but the base's hidden size is ${base.hiddenSize}`);
    const beyond = b.layers.filter((l) => l >= base.numLayers);
    if (beyond.length) add('layers', `layers up to ${Math.max(...beyond)}`, `${base.numLayers} layers`, `the adapter has adapters in layers ${beyond.join(', ')}, beyond the base's ${base.numLayers} layer${base.numLayers === 1 ? '' : 's'}`);
    if (b.modelType && b.modelType !== base.modelType) notes.push(`the adapter was made for a ${b.modelType} model; the base is ${base.modelType}`);
  }
  return { base: base.source, compatible: mismatches.length === 0, checked, mismatches, notes };
}

// ---------------------------------------------------------------------------------------------

/** Renders an inspection as indented text lines (what `peftkit inspect` prints). */
export function renderInspection(ins: AdapterInspection): string {
  const L: string[] = [];
  const row = (k: string, v: string) => L.push(`  ${`${k}:`.padEnd(16)} ${v}`);
  L.push(`${basename(ins.folder)}  (${ins.folder})`);
  if (ins.kind === 'model') {
    const m = ins.model!;
    row('kind', `MODEL CHECKPOINT, not an adapter (${m.modelType}${m.architectures.length ? `, ${m.architectures.join(', ')}` : ''})`);
    row('sizes', `${m.numLayers ?? '?'} layer(s), hidden ${m.hiddenSize ?? '?'}, vocab ${m.vocabSize ?? '?'}`);
  } else {
    row('kind', ins.format === 'adapterhub' ? 'AdapterHub bottleneck adapter' : `HF PEFT adapter, ${ins.method ?? 'unknown method'}`);
    row('task type', ins.taskType ?? 'none');
    row('base model', ins.baseModel ?? 'not recorded');
    row(ins.format === 'adapterhub' ? 'version' : 'PEFT version', ins.peftVersion ?? 'not recorded');
  }
  if (ins.lora) {
    const l = ins.lora;
    row('rank / alpha', `r ${l.r}, lora_alpha ${l.loraAlpha} (scaling ${Math.round(l.scaling * 1e4) / 1e4}${l.useRslora ? ', rsLoRA' : ''}), dropout ${l.loraDropout}, bias ${l.bias}`);
    if (Object.keys(l.rankPattern).length) row('rank_pattern', JSON.stringify(l.rankPattern));
    if (Object.keys(l.alphaPattern).length) row('alpha_pattern', JSON.stringify(l.alphaPattern));
    row('target modules', `${JSON.stringify(ins.targetModules)} → ${l.modules.length} modules in ${l.layers.length} layer(s)${l.fanInFanOut ? ' (fan_in_fan_out: Conv1D)' : ''}`);
    if (l.modules.length) row('modules', foldModuleNames(l.modules.map((m) => m.name)));
    const emb = l.modules.filter((m) => m.kind === 'embedding');
    if (emb.length) row('embeddings', emb.map((m) => `${m.name} (vocabulary ${m.inFeatures}, width ${m.outFeatures})`).join(', '));
    if (l.useDora) row('DoRA', `magnitude vectors on ${l.modules.filter((m) => m.dora).length} of ${l.modules.length} modules`);
    if (l.modulesToSave) row('modules_to_save', l.modulesToSave.join(', '));
    if (ins.numLabels !== null) row('labels', `${ins.numLabels} (rows of the saved head)`);
  }
  if (ins.prompt) {
    const p = ins.prompt;
    row('virtual tokens', `${p.numVirtualTokens ?? '?'} × token_dim ${p.tokenDim ?? '?'}${ins.method === 'PREFIX_TUNING' ? ` × ${p.numLayers ?? '?'} layers × 2 (keys, values)` : ''}`);
    if (p.init) row('init', `${p.init}${p.initText ? ` ${JSON.stringify(p.initText)}` : ''}`);
    if (p.tableShape) row('table', `prompt_embeddings [${p.tableShape.join(', ')}]`);
  }
  if (ins.bottleneck) {
    const b = ins.bottleneck;
    row('adapter', `"${b.name ?? '?'}", ${b.preset} (mh_adapter ${b.mhAdapter}, output_adapter ${b.outputAdapter}${b.isParallel ? ', parallel' : ''}), ${b.nonLinearity ?? '?'}`);
    row('bottleneck', `hidden_size ${b.hiddenSize ?? '?'} / reduction_factor ${JSON.stringify(b.reductionFactor)} → ${b.bottleneckSizes.join(', ') || '?'} units, ${b.layers.length} layer(s)`);
    if (b.modelClass || b.modelType) row('model class', `${b.modelClass ?? '?'} (${b.modelType ?? '?'})`);
  }
  if (ins.numParameters !== null) {
    const bd = ins.parameterBreakdown;
    const parts = bd && (bd.modulesToSave || bd.other) ? ` (${[`${n(bd.adapter)} ${ins.kind === 'model' ? '' : 'adapter'}`.trim(), bd.modulesToSave ? `${n(bd.modulesToSave)} modules_to_save` : '', bd.other ? `${n(bd.other)} other` : ''].filter(Boolean).join(' + ')})` : '';
    row('parameters', `${n(ins.numParameters)} in ${ins.numTensors} tensor${ins.numTensors === 1 ? '' : 's'}${parts}`);
    row('dtypes', Object.entries(ins.dtypes).map(([d, c]) => `${d} (${c})`).join(', '));
  }
  if (ins.fileBytes !== null) row('size', `${n(ins.fileBytes)} bytes (${ins.weightsFile}); folder ${n(ins.folderBytes)} bytes`);
  if (ins.notes.length) {
    L.push('  notes:');
    for (const x of ins.notes) L.push(`    - ${x}`);
  }
  const c = ins.compatibility;
  if (c) {
    L.push(`  compatibility with ${c.base}: ${c.compatible ? `OK (${c.checked} checked)` : `${c.mismatches.length} mismatch${c.mismatches.length === 1 ? '' : 'es'} in ${c.checked} checked`}`);
    const shown = c.mismatches.slice(0, 20);
    for (const m of shown) L.push(`    - ${m.message}`);
    if (c.mismatches.length > shown.length) L.push(`    - ... and ${c.mismatches.length - shown.length} more`);
    for (const x of c.notes) L.push(`    (${x})`);
  }
  return L.join('\n');
}
