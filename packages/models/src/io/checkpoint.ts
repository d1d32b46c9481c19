/**
 * `from_pretrained` / `save_pretrained` for tfjs models: a folder with `config.json`, the weights
 * in `model.safetensors` (or shards listed by `model.safetensors.index.json`) and the tokenizer
 * files, as transformers reads and writes them (`modeling_utils.py`).
 */
import * as tf from '@tensorflow/tfjs';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { UserError, writeJsonAtomic } from '@peftkit/core';
import type { LoadedModel, ModelConfig, ModelTask, PreTrainedModel } from '../model.js';
import { createModel, SUPPORTED_MODEL_TYPES } from '../architectures/index.js';
import { hasTokenizer, loadTokenizer } from '../tokenizer/load.js';
import type { Tokenizer } from '../tokenizer/tokenizer.js';
import { CheckpointError, forEachSafetensor, readSafetensorsHeader, refuseNonSafetensors, writeSafetensors, type SafetensorsDtype } from './safetensors.js';
import { resolveModelSource, type ResolveSourceOptions } from './hub.js';

/** Options of {@link loadPretrained}. */
export interface LoadPretrainedOptions extends ResolveSourceOptions {
  /** Compute dtype: only float32 (tfjs has no float16/bfloat16 kernels); `auto` means float32 too. */
  dtype?: 'float32' | 'auto';
  /** Which head to build; absent: the model's own choice from config.json's `architectures`. */
  task?: ModelTask;
  /** For `sequence-classification`: the number of labels (sets config.json's `num_labels`). */
  numLabels?: number;
  /**
   * When true (default), a tensor the model needs that the checkpoint lacks, or a checkpoint tensor
   * the model has no place for, is an error naming each. Output heads the checkpoint lacks are always
   * allowed (newly initialized, as transformers does, e.g. `score` on a causal-LM checkpoint).
   */
  strict?: boolean;
  /** Load the tokenizer too when the folder has one (default true). */
  tokenizer?: boolean;
}

/** What {@link loadPretrained} read and how the checkpoint's names matched the model's. */
export interface CheckpointReport {
  folder: string;
  /** Weight files read, in order. */
  files: string[];
  /** Number of checkpoint tensors assigned to parameters. */
  loaded: number;
  /** Model parameters the checkpoint lacked (only allowed ones when strict): left at their initial values. */
  missing: string[];
  /** Output-head parameters the checkpoint lacked, newly initialized (a subset of `missing`). */
  newlyInitialized: string[];
  /** Checkpoint tensors not used: other tasks' heads, buffers (`attn.bias`), or unknown names when not strict. */
  unexpected: string[];
  /** Stored dtypes seen, with counts (`{F32: 12}`); F16/BF16 are upcast to float32. */
  dtypes: Partial<Record<SafetensorsDtype, number>>;
  /** Parameter count (tied weights once). */
  numParameters: number;
  /**
   * What the caller should tell the user (also passed to `log`): a tokenizer with more ids than the
   * model has embedding rows (see {@link tokenizerVocabWarning}).
   */
  warnings: string[];
}

/** The result of {@link loadPretrained}: a {@link LoadedModel} plus what was loaded. */
export interface LoadedPretrained extends LoadedModel {
  report: CheckpointReport;
}

/** Checkpoint keys that are buffers in PyTorch and have no parameter here (transformers ignores them too). */
const IGNORED_KEYS = [/(^|\.)attn\.(masked_)?bias$/, /(^|\.)rotary_emb\.inv_freq$/, /(^|\.)embeddings\.position_ids$/];

/** Prefixes under which transformers nests the base model in its head classes (`base_model_prefix`). */
const BASE_PREFIXES = ['transformer', 'model', 'bert', 'distilbert', 'roberta'];

/** Heads of the tasks other than the loaded one: present in a checkpoint, dropped silently (as transformers warns and drops). */
const OTHER_HEADS = /^(lm_head|score|classifier|pre_classifier|qa_outputs|cls|vocab_transform|vocab_layer_norm|vocab_projector|pooler|bert\.pooler|multiple_choice_head)\./;

function readConfig(folder: string): ModelConfig {
  const file = join(folder, 'config.json');
  if (!existsSync(file)) {
    throw new UserError(`${folder}: no config.json; a model folder holds config.json and model.safetensors (as written by save_pretrained)`, { file, hint: 'point "model" at a Hugging Face model folder' });
  }
  let config: unknown;
  try {
    config = JSON.parse(readFileSync(file, 'utf8'));
  } catch (e) {
    throw new UserError(`${file}: not valid JSON (${(e as Error).message})`, { file });
  }
  if (!config || typeof config !== 'object' || Array.isArray(config)) throw new UserError(`${file}: expected a JSON object`, { file });
  const mt = (config as { model_type?: unknown }).model_type;
  if (typeof mt !== 'string') throw new UserError(`${file}: /model_type is missing; it names the architecture (one of ${SUPPORTED_MODEL_TYPES.join(', ')})`, { file, pointer: '/model_type' });
  if (!(SUPPORTED_MODEL_TYPES as readonly string[]).includes(mt)) {
    throw new UserError(`${file}: /model_type "${mt}" is not supported; supported model types: ${SUPPORTED_MODEL_TYPES.join(', ')}`, { file, pointer: '/model_type', hint: 'use a checkpoint of a supported architecture' });
  }
  return config as ModelConfig;
}

/**
 * The weight files of a model folder: the shards of `model.safetensors.index.json`, else
 * `model.safetensors`. Pickle weights (`pytorch_model.bin`) are refused with a conversion hint.
 * @throws CheckpointError naming the folder or file.
 */
export function weightFiles(folder: string): { files: string[]; weightMap?: Record<string, string> } {
  const index = join(folder, 'model.safetensors.index.json');
  if (existsSync(index)) {
    let weightMap: Record<string, string>;
    try {
      weightMap = JSON.parse(readFileSync(index, 'utf8')).weight_map;
    } catch (e) {
      throw new CheckpointError(`${index}: not valid JSON (${(e as Error).message})`, { file: index });
    }
    if (!weightMap || typeof weightMap !== 'object') throw new CheckpointError(`${index}: no /weight_map object (tensor name → shard file)`, { file: index, pointer: '/weight_map' });
    const shards = [...new Set(Object.values(weightMap))];
    for (const s of shards) if (!existsSync(join(folder, s))) throw new CheckpointError(`${index}: /weight_map names shard "${s}", which is not in ${folder}`, { file: index, hint: 'download every shard' });
    return { files: shards.map((s) => join(folder, s)), weightMap };
  }
  const single = join(folder, 'model.safetensors');
  if (existsSync(single)) return { files: [single] };
  const pickles = existsSync(folder) ? readdirSync(folder).filter((f) => /^pytorch_model.*\.bin$|\.(bin|pt|pth|ckpt)$/.test(f)) : [];
  if (pickles.length) refuseNonSafetensors(join(folder, pickles[0]), new Uint8Array());
  throw new CheckpointError(`${folder}: no model.safetensors or model.safetensors.index.json`, { file: folder, hint: 'save the model with save_pretrained (safe_serialization=True)' });
}

/**
 * The model key a checkpoint key belongs to: the key itself, with the base-model prefix added
 * (a `GPT2Model` checkpoint, `h.0...`, into `GPT2LMHeadModel`, `transformer.h.0...`), or removed (the
 * other way round), as transformers' `base_model_prefix` handling.
 */
function matchKey(key: string, own: Map<string, tf.Tensor>, prefixes: string[]): string | undefined {
  if (own.has(key)) return key;
  for (const p of prefixes) if (own.has(`${p}.${key}`)) return `${p}.${key}`;
  for (const p of BASE_PREFIXES) if (key.startsWith(`${p}.`) && own.has(key.slice(p.length + 1))) return key.slice(p.length + 1);
  return undefined;
}

/**
 * Loads a pretrained model from a local folder or a hub id (`from_pretrained`): reads config.json,
 * builds the architecture with `createModel`, then streams the safetensors weights tensor by tensor
 * into the parameters (read, assign, dispose: the checkpoint is never held beside the model), and
 * loads the tokenizer when the folder has one. The model is returned in eval mode.
 * @throws UserError for a missing or invalid config.json or an unsupported `model_type` (listing the
 *   supported ones), a bad dtype; CheckpointError for bad or pickle weight files, and (strict) for
 *   missing or unexpected tensors, named; always for tensors whose shapes differ from the model's.
 */
export async function loadPretrained(source: string, opts: LoadPretrainedOptions = {}): Promise<LoadedPretrained> {
  if (opts.dtype !== undefined && opts.dtype !== 'float32' && opts.dtype !== 'auto') {
    throw new UserError(`dtype "${opts.dtype}" is not supported: tfjs computes in float32; use "float32" or "auto"`, { pointer: '/dtype' });
  }
  const { folder, hubId } = await resolveModelSource(source, opts);
  const config = readConfig(folder);
  if (opts.numLabels !== undefined) {
    config.num_labels = opts.numLabels;
    if (config.id2label && Object.keys(config.id2label as object).length !== opts.numLabels) {
      delete config.id2label;
      delete config.label2id;
    }
  }
  const { files, weightMap } = weightFiles(folder);
  for (const f of files) readSafetensorsHeader(f); // every file is validated before the model is built

  const model = createModel(config, opts.task, join(folder, 'config.json'));
  try {
    const report = loadWeights(model, folder, files, weightMap, opts.strict ?? true);
    const tokenizer = (opts.tokenizer ?? true) && hasTokenizer(folder) ? loadTokenizer(folder) : undefined;
    const mismatch = tokenizer && tokenizerVocabWarning(tokenizer, model, folder);
    if (mismatch) {
      report.warnings.push(mismatch);
      opts.log?.(`warning: ${mismatch}`);
    }
    model.eval();
    return { model, tokenizer, source: hubId ?? source, report };
  } catch (e) {
    model.dispose();
    throw e;
  }
}

function loadWeights(model: PreTrainedModel, folder: string, files: string[], weightMap: Record<string, string> | undefined, strict: boolean): CheckpointReport {
  const own = model.stateDict();
  const optional = model.optionalStateKeys();
  const prefixes = BASE_PREFIXES.filter((p) => [...own.keys()].some((k) => k.startsWith(`${p}.`)));
  const heads = model.outputHeadNames();
  const isHead = (k: string) => heads.some((h) => k === h || k.startsWith(`${h}.`));
  const assigned = new Set<string>();
  const unknown: string[] = [];
  const ignored: string[] = [];
  const mismatched: string[] = [];
  const dtypes: Partial<Record<SafetensorsDtype, number>> = {};
  for (const file of files) {
    forEachSafetensor(file, (key, t, entry) => {
      if (weightMap && weightMap[key] !== undefined && join(folder, weightMap[key]) !== file) return; // listed under another shard
      dtypes[entry.dtype] = (dtypes[entry.dtype] ?? 0) + 1;
      const target = matchKey(key, own, prefixes);
      if (target === undefined) {
        (IGNORED_KEYS.some((re) => re.test(key)) || OTHER_HEADS.test(key) ? ignored : unknown).push(key);
        return;
      }
      const v = own.get(target)!;
      if (!sameShape(v.shape, t.shape)) {
        mismatched.push(`${key}: the model expects [${v.shape.join(', ')}], the checkpoint has [${t.shape.join(', ')}]`);
        return;
      }
      if (!(v instanceof tf.Variable)) throw new Error(`${target} is a buffer, not a parameter`);
      if (t.dtype === v.dtype) v.assign(t);
      else tf.tidy(() => v.assign(t.cast(v.dtype)));
      assigned.add(target);
    });
  }
  // A tied weight is one variable under two names: loading either name loads both.
  const loadedVars = new Set([...assigned].map((k) => own.get(k)));
  const missing = [...own.keys()].filter((k) => !assigned.has(k) && !loadedVars.has(own.get(k)) && !optional.has(k));
  const newlyInitialized = missing.filter(isHead);
  const missingBody = missing.filter((k) => !isHead(k));
  const where = files.length === 1 ? files[0] : folder;
  if (mismatched.length) {
    throw new CheckpointError(`${where}: tensor shapes do not match the model built from config.json: ${mismatched.join('; ')}`, {
      file: where,
      hint: 'the checkpoint and config.json disagree, or a setting (num_labels, task) changes a head: fix the config or the settings',
    });
  }
  if (strict && (missingBody.length || unknown.length)) {
    const parts = [
      missingBody.length ? `missing tensors: ${missingBody.join(', ')}` : '',
      unknown.length ? `unexpected tensors: ${unknown.join(', ')}` : '',
    ].filter(Boolean);
    throw new CheckpointError(`${where}: the checkpoint does not match the ${String(model.config.model_type)} model: ${parts.join('; ')}`, {
      file: where,
      hint: 'use the checkpoint that goes with this config.json, or set "strict": false to keep the missing tensors at their initial values',
    });
  }
  return {
    folder,
    files,
    loaded: assigned.size,
    missing,
    newlyInitialized,
    unexpected: [...ignored, ...unknown],
    dtypes,
    numParameters: model.numParameters(),
    warnings: [],
  };
}

/**
 * Gives a sequence classifier without `pad_token_id` one, as transformers users do before training
 * (`tokenizer.pad_token = tokenizer.eos_token; model.config.pad_token_id = tokenizer.pad_token_id`):
 * `padTokenId` when given, else the tokenizer's pad token, else its EOS token, else config.json's
 * `eos_token_id` (the first, when a list). Decoder classifiers pool each row's last token that is not
 * the pad token; without one, any batch of more than one row fails (as in transformers). Other tasks,
 * and classifiers that have a pad token while `padTokenId` is not given, are left alone.
 * @returns a sentence saying which id was set and why, or undefined when nothing changed.
 * @throws UserError when `padTokenId` is outside the vocabulary, or no pad or EOS token is known.
 */
export function setClassifierPadToken(loaded: LoadedModel, padTokenId?: number | null): string | undefined {
  const { model, tokenizer } = loaded;
  const cfg = model.config;
  const vocab = model.dims().vocabSize;
  if (padTokenId != null) {
    if (!Number.isInteger(padTokenId) || padTokenId < 0 || padTokenId >= vocab) {
      throw new UserError(`pad_token_id ${padTokenId} is not a token id of the model (0 to ${vocab - 1})`, { pointer: '/pad_token_id', hint: 'give the id of the tokenizer\'s pad or EOS token' });
    }
    if (cfg.pad_token_id === padTokenId) return undefined;
    cfg.pad_token_id = padTokenId;
    return `pad_token_id set to ${padTokenId} as given`;
  }
  if (model.task !== 'sequence-classification' || cfg.pad_token_id != null) return undefined;
  const eosCfg = Array.isArray(cfg.eos_token_id) ? (cfg.eos_token_id[0] as number | undefined) : (cfg.eos_token_id as number | null | undefined);
  const [id, what] =
    tokenizer?.padTokenId != null ? [tokenizer.padTokenId, 'the tokenizer\'s pad token']
    : tokenizer?.eosTokenId != null ? [tokenizer.eosTokenId, 'the tokenizer\'s EOS token (it has no pad token), as transformers users set tokenizer.pad_token = tokenizer.eos_token']
    : eosCfg != null ? [eosCfg, 'config.json\'s eos_token_id (no pad token is known), as transformers users set pad_token_id = eos_token_id']
    : [undefined, ''];
  if (id === undefined) {
    throw new UserError(`${String(cfg.model_type)} sequence classification needs a pad token: the model pools each row's last token that is not padding, but config.json has no pad_token_id and no eos_token_id, and the tokenizer has neither`, {
      pointer: '/pad_token_id', hint: 'set pad_token_id in the load step (a token id the tokenizer pads with)',
    });
  }
  cfg.pad_token_id = id;
  return `config.json has no pad_token_id: using ${id}, ${what}`;
}

/**
 * Says when `tokenizer` has more ids than `model` has embedding rows (added tokens, e.g. a pad
 * token at id = vocab_size, which transformers users follow with `resize_token_embeddings`): those
 * ids have no embedding and fail in any forward pass. A model larger than its tokenizer (a vocabulary
 * padded to a multiple of 64) is normal and says nothing.
 * @returns the message naming both sizes and the first ids without rows, or undefined when they fit.
 */
export function tokenizerVocabWarning(tokenizer: Tokenizer, model: PreTrainedModel, where: string): string | undefined {
  const rows = model.dims().vocabSize;
  const ids = tokenizer.vocabSize;
  if (ids <= rows) return undefined;
  const extra = Array.from({ length: Math.min(ids - rows, 5) }, (_, i) => rows + i).map((id) => `${id} ${JSON.stringify(tokenizer.idToToken?.(id) ?? '?')}`);
  return (
    `${where}: the tokenizer has ${ids} tokens but the model's embedding has ${rows} rows (config.json /vocab_size); ` +
    `ids ${rows} to ${ids - 1} (${extra.join(', ')}${ids - rows > 5 ? ', ...' : ''}) have no embedding and fail in a forward pass: ` +
    `resize the embeddings (resizeTokenEmbeddings, as transformers' resize_token_embeddings) or load an adapter that carries the new rows`
  );
}

function sameShape(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

/** transformers class names per model type and task, for config.json's `architectures`. */
const CLASS_NAMES: Record<string, [string, Partial<Record<ModelTask, string>>]> = {
  gpt2: ['GPT2', { 'causal-lm': 'GPT2LMHeadModel', base: 'GPT2Model' }],
  llama: ['Llama', {}],
  qwen2: ['Qwen2', {}],
  mistral: ['Mistral', {}],
  bert: ['Bert', { 'causal-lm': 'BertLMHeadModel' }],
  distilbert: ['DistilBert', {}],
};

/** The transformers class of a model (`GPT2LMHeadModel`, `LlamaForSequenceClassification`, ...), if known. */
export function architectureName(modelType: string, task: ModelTask): string | undefined {
  const e = CLASS_NAMES[modelType];
  if (!e) return undefined;
  return e[1][task] ?? (task === 'causal-lm' ? `${e[0]}ForCausalLM` : task === 'sequence-classification' ? `${e[0]}ForSequenceClassification` : `${e[0]}Model`);
}

/** Sorts object keys recursively, as transformers writes config.json (`sort_keys=True`). */
function sortKeys(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(sortKeys);
  if (v && typeof v === 'object') return Object.fromEntries(Object.keys(v).sort().map((k) => [k, sortKeys((v as Record<string, unknown>)[k])]));
  return v;
}

/**
 * The `config.json` object transformers 5's `save_pretrained` writes for `model`, keys sorted:
 * `architectures` set to the class of the model's task; `dtype` float32 (transformers 4 wrote
 * `torch_dtype`, which is dropped); for classifiers `id2label` / `label2id` (LABEL_i by default),
 * for other heads none; no `num_labels` (transformers 5 derives it from `id2label`); no
 * `pad_token_id` when it is unset (never `null`). Llama-family RoPE settings are in
 * `rope_parameters` already (the config reader folds `rope_theta` / `rope_scaling` into it).
 */
export function pretrainedConfigJson(model: PreTrainedModel): Record<string, unknown> {
  const cfg: Record<string, unknown> = { ...model.config, dtype: 'float32' };
  delete cfg.torch_dtype;
  const arch = architectureName(String(model.config.model_type), model.task);
  if (arch) cfg.architectures = [arch];
  const numLabels = cfg.num_labels;
  delete cfg.num_labels;
  if (model.task !== 'sequence-classification') {
    delete cfg.id2label;
    delete cfg.label2id;
  } else if (cfg.id2label == null && typeof numLabels === 'number') {
    const labels = Array.from({ length: numLabels }, (_, i) => `LABEL_${i}`);
    cfg.id2label = Object.fromEntries(labels.map((l, i) => [String(i), l]));
    cfg.label2id = Object.fromEntries(labels.map((l, i) => [l, i]));
  }
  if (cfg.id2label == null) delete cfg.label2id;
  for (const k of ['id2label', 'pad_token_id']) if (cfg[k] == null) delete cfg[k];
  return sortKeys(cfg) as Record<string, unknown>;
}

/**
 * Writes a model folder that transformers' `from_pretrained` loads (`save_pretrained`):
 * config.json ({@link pretrainedConfigJson}), model.safetensors (float32, metadata `{"format": "pt"}`, each tied weight once under
 * its first name, as transformers drops `lm_head.weight` when tied) and the tokenizer's files.
 * Every file is written atomically.
 * @returns the file names written.
 */
export function savePretrained(loaded: LoadedModel, folder: string): string[] {
  const { model } = loaded;
  const seen = new Set<tf.Tensor>();
  const tensors = new Map<string, tf.Tensor>();
  for (const [name, t] of model.stateDict()) {
    if (seen.has(t)) continue;
    seen.add(t);
    tensors.set(name, t);
  }
  writeSafetensors(join(folder, 'model.safetensors'), tensors, { format: 'pt' });
  writeJsonAtomic(join(folder, 'config.json'), pretrainedConfigJson(model));
  const written = ['config.json', 'model.safetensors'];
  if (loaded.tokenizer?.save) written.push(...loaded.tokenizer.save(folder));
  return written;
}
