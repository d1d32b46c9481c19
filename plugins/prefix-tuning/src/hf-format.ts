/**
 * HF PEFT's folder format for prompt learning (peft/utils/save_and_load.py): `adapter_config.json`
 * with the method's config, and `adapter_model.safetensors` holding one tensor,
 * `prompt_embeddings`: [num_virtual_tokens, token_dim] for prompt tuning, and
 * [num_virtual_tokens, num_layers · 2 · token_dim] for prefix tuning (the prefix itself, after any
 * reparameterization, as `get_prompt_embedding_to_save` computes it).
 *
 * One format for both methods, which is why they live in one package.
 */
import * as tf from '@tensorflow/tfjs';
import { UserError } from '@peftkit/core';
import { join } from 'node:path';
import { HF_ADAPTER_CONFIG, HF_ADAPTER_WEIGHTS, StateDictError, readHfAdapterFolder, writeHfAdapterFiles, type AdapterHandle } from '@peftkit/models';
import type { PromptTuningConfig } from './prompt/config.generated.js';
import type { PrefixTuningConfig } from './prefix/config.generated.js';

/** The single tensor of a prompt-learning adapter. */
export const PROMPT_EMBEDDINGS_KEY = 'prompt_embeddings';

/** The peft_type values this package reads. */
export type PromptLearningPeftType = 'PROMPT_TUNING' | 'PREFIX_TUNING';

/**
 * The `prompt_embeddings` tensor of a state dict (also under HF's `base_model.model.` prefix).
 * @param shape - the shape it must have
 * @throws StateDictError when it is missing, shaped otherwise, or other tensors are present
 */
export function promptEmbeddingsFrom(sd: Map<string, tf.Tensor>, shape: readonly number[], context: string): tf.Tensor {
  const keys = [PROMPT_EMBEDDINGS_KEY, `base_model.model.${PROMPT_EMBEDDINGS_KEY}`];
  const key = keys.find((k) => sd.has(k));
  const t = key ? sd.get(key)! : undefined;
  const report = {
    missing: t ? [] : [PROMPT_EMBEDDINGS_KEY],
    unexpected: [...sd.keys()].filter((k) => k !== key),
    mismatched: t && (t.shape.length !== shape.length || t.shape.some((x, i) => x !== shape[i])) ? [`${PROMPT_EMBEDDINGS_KEY}: expected [${shape.join(', ')}], got [${t.shape.join(', ')}]`] : [],
  };
  if (report.missing.length || report.unexpected.length || report.mismatched.length) throw new StateDictError(report, context);
  return t!;
}

/**
 * Keys HF PEFT writes that carry no setting peftkit uses (`inference_mode` is how the adapter was
 * saved; loading always builds the plain table).
 */
const METADATA_KEYS = new Set(['peft_type', 'base_model_name_or_path', 'revision', 'inference_mode', 'auto_mapping', 'peft_version', 'tokenizer_kwargs', 'modules_to_save']);

/** Copies the listed fields of an HF config; warns about other keys that carry a value. */
function pick<C>(json: Record<string, unknown>, fields: readonly string[], file: string, warn: (m: string) => void): C {
  const out: Record<string, unknown> = {};
  for (const f of fields) if (json[f] !== undefined) out[f] = json[f];
  const ignored = Object.keys(json).filter((k) => !fields.includes(k) && !METADATA_KEYS.has(k) && json[k] !== null && json[k] !== false && !(Array.isArray(json[k]) && (json[k] as unknown[]).length === 0));
  if (ignored.length) warn(`${file}: ignoring keys peftkit does not know: ${ignored.join(', ')}`);
  return out as C;
}

/** Checks a field that must be a positive integer when present. @throws UserError with its pointer */
function positiveInt(json: Record<string, unknown>, field: string, file: string): void {
  const v = json[field];
  if (v !== undefined && v !== null && !(Number.isInteger(v) && (v as number) > 0)) {
    throw new UserError(`${file}: /${field} must be a positive integer, got ${JSON.stringify(v)}`, { file, pointer: `/${field}` });
  }
}

function checkCommon(json: Record<string, unknown>, file: string): void {
  for (const f of ['num_virtual_tokens', 'token_dim', 'num_attention_heads', 'num_layers', 'num_transformer_submodules']) positiveInt(json, f, file);
  if (json.num_transformer_submodules !== undefined && json.num_transformer_submodules !== null && json.num_transformer_submodules !== 1) {
    throw new UserError(`${file}: /num_transformer_submodules is ${json.num_transformer_submodules}: the adapter is for an encoder-decoder model, which peftkit does not have`, { file, pointer: '/num_transformer_submodules' });
  }
}

/**
 * The prompt-tuning config of an HF `adapter_config.json` (PROMPT_TUNING).
 * @throws UserError naming the file and field for invalid values
 */
export function promptTuningConfigFromHf(json: Record<string, unknown>, file: string, warn: (m: string) => void = () => {}): PromptTuningConfig {
  checkCommon(json, file);
  const init = json.prompt_tuning_init;
  if (init !== undefined && init !== null && !['RANDOM', 'SAMPLE_VOCAB', 'TEXT'].includes(init as string)) {
    throw new UserError(`${file}: /prompt_tuning_init is ${JSON.stringify(init)}; HF PEFT knows RANDOM, SAMPLE_VOCAB and TEXT`, { file, pointer: '/prompt_tuning_init' });
  }
  return pick<PromptTuningConfig>(json, ['num_virtual_tokens', 'token_dim', 'num_transformer_submodules', 'num_attention_heads', 'num_layers', 'prompt_tuning_init', 'prompt_tuning_init_text', 'tokenizer_name_or_path', 'task_type'], file, warn);
}

/**
 * The prefix-tuning config of an HF `adapter_config.json` (PREFIX_TUNING).
 * @throws UserError naming the file and field for invalid values
 */
export function prefixTuningConfigFromHf(json: Record<string, unknown>, file: string, warn: (m: string) => void = () => {}): PrefixTuningConfig {
  checkCommon(json, file);
  positiveInt(json, 'encoder_hidden_size', file);
  return pick<PrefixTuningConfig>(json, ['num_virtual_tokens', 'token_dim', 'num_transformer_submodules', 'num_attention_heads', 'num_layers', 'prefix_projection', 'encoder_hidden_size', 'task_type'], file, warn);
}

/** A prompt-learning folder as read; the caller disposes `table`. */
export interface PromptLearningFolder {
  /** The `adapter_config.json` path, for messages. */
  file: string;
  json: Record<string, unknown>;
  /** `prompt_embeddings`, float32. */
  table: tf.Tensor2D;
}

/**
 * Reads an HF PEFT prompt-learning folder and checks that it is `peftType` with one 2-D
 * `prompt_embeddings` tensor.
 * @throws UserError naming the file: missing files, a pickle (refused), another peft_type, a
 *   missing or misshapen tensor
 */
export function readPromptLearningFolder(dir: string, peftType: PromptLearningPeftType): PromptLearningFolder {
  const folder = readHfAdapterFolder(dir);
  const file = join(dir, HF_ADAPTER_CONFIG);
  const weights = join(dir, HF_ADAPTER_WEIGHTS);
  const json = folder.config;
  try {
    if (json.peft_type !== peftType) {
      throw new UserError(`${file}: /peft_type is ${JSON.stringify(json.peft_type)}, not ${peftType}`, { file, pointer: '/peft_type', hint: 'load it with the method of its peft_type' });
    }
    const key = [PROMPT_EMBEDDINGS_KEY, `base_model.model.${PROMPT_EMBEDDINGS_KEY}`].find((k) => folder.tensors.has(k));
    if (!key) throw new UserError(`${weights}: no "${PROMPT_EMBEDDINGS_KEY}" tensor (found: ${[...folder.tensors.keys()].join(', ') || 'none'})`, { file: weights });
    const table = folder.tensors.get(key)!;
    if (table.rank !== 2) throw new UserError(`${weights}: "${PROMPT_EMBEDDINGS_KEY}" must be 2-D, got [${table.shape.join(', ')}]`, { file: weights });
    folder.tensors.delete(key);
    if (table.dtype === 'float32') return { file, json, table: table as tf.Tensor2D };
    const f = table.cast('float32') as tf.Tensor2D;
    table.dispose();
    return { file, json, table: f };
  } finally {
    for (const t of folder.tensors.values()) t.dispose();
  }
}

/** {@link readPromptLearningFolder}, handed to `load`; the table is disposed afterwards, also when `load` throws. */
export function withPromptLearningFolder<T>(dir: string, peftType: PromptLearningPeftType, load: (folder: PromptLearningFolder) => T): T {
  const folder = readPromptLearningFolder(dir, peftType);
  try {
    return load(folder);
  } finally {
    folder.table.dispose();
  }
}

/**
 * Writes a prompt-learning adapter as HF PEFT does: `adapter_model.safetensors` with
 * `prompt_embeddings` (metadata `{"format": "pt"}`) and `adapter_config.json` (sorted keys, indent 2).
 * @returns the file names written
 */
export function savePromptLearningAdapter(dir: string, handle: AdapterHandle, baseModelNameOrPath: string | null = null): string[] {
  return writeHfAdapterFiles(dir, handle, baseModelNameOrPath);
}
