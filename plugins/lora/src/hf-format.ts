/**
 * LoRA's side of HF PEFT's adapter folder (`adapter_config.json` + `adapter_model.safetensors`):
 * the LoRA rules for reading `adapter_config.json` ({@link loraConfigFromHf}), and
 * `PeftModel.from_pretrained` for LoRA ({@link loadHfLoraAdapter}). The method-independent file
 * handling is `@peftkit/models`' `peft/hf-adapter-io.ts`.
 */
import { join } from 'node:path';
import type * as tf from '@tensorflow/tfjs';
import { UserError, schemaIssues, type StepLogger } from '@peftkit/core';
import { HF_ADAPTER_CONFIG, PreTrainedModel, readHfAdapterFolder, resizeTokenEmbeddings, writeHfAdapterFiles, type AdapterHandle } from '@peftkit/models';
import { loraConfigSchema, validateConfig, type LoraConfig } from './config.js';
import { injectLora, type LoraAdapterHandle, type LoraTargetModel } from './model.js';

/**
 * Writes an adapter as HF PEFT's `save_pretrained` does: `<folder>/adapter_model.safetensors`
 * (the handle's `stateDict()`, float32, metadata `{"format": "pt"}`) then `<folder>/adapter_config.json`
 * (`adapterConfig()` plus `base_model_name_or_path`, keys sorted, indent 2), each written atomically.
 * A thin wrapper over `writeHfAdapterFiles` of `@peftkit/models` (any method's handle works).
 * @param baseModelNameOrPath - the hub id or local folder of the base model (HF's `base_model_name_or_path`).
 * @returns the paths written.
 */
export function writeHfAdapter(handle: AdapterHandle, folder: string, baseModelNameOrPath: string | null): string[] {
  return writeHfAdapterFiles(folder, handle, baseModelNameOrPath).map((f) => join(folder, f));
}

/** Fields of HF PEFT's adapter_config.json that carry no setting (where the adapter came from). */
const META_FIELDS = new Set(['peft_type', 'base_model_name_or_path', 'revision', 'inference_mode', 'peft_version', 'auto_mapping']);

/**
 * HF PEFT LoraConfig fields peftkit does not implement, with the test for "off": the adapter loads
 * when they are off, and is refused (naming the field) when on.
 */
const OFF_WHEN: Record<string, { off: (v: unknown) => boolean; feature: string }> = {
  lora_bias: { off: (v) => v === false || v == null, feature: 'a bias on lora_B' },
  use_qalora: { off: (v) => v === false || v == null, feature: 'QALoRA' },
  qalora_group_size: { off: () => true, feature: 'QALoRA' },
  use_alora: { off: (v) => v === false || v == null, feature: 'activated LoRA' },
  alora_invocation_tokens: { off: (v) => v == null, feature: 'activated LoRA' },
  layer_replication: { off: (v) => v == null || (Array.isArray(v) && v.length === 0), feature: 'layer replication' },
  loftq_config: { off: (v) => v == null || (typeof v === 'object' && Object.keys(v as object).length === 0), feature: 'LoftQ' },
  megatron_config: { off: (v) => v == null, feature: 'Megatron parallel layers' },
  megatron_core: { off: () => true, feature: 'Megatron parallel layers' },
  eva_config: { off: (v) => v == null, feature: 'EVA initialisation' },
  corda_config: { off: (v) => v == null, feature: 'CorDA initialisation' },
  target_parameters: { off: (v) => v == null || (Array.isArray(v) && v.length === 0), feature: 'LoRA on raw parameters (target_parameters)' },
  trainable_token_indices: { off: (v) => v == null, feature: 'trainable tokens' },
  ensure_weight_tying: { off: (v) => v === false || v == null, feature: 'weight tying of adapters' },
  use_bdlora: { off: (v) => v === false || v == null, feature: 'block-diagonal LoRA' },
};

const SETTINGS = new Set(Object.keys(loraConfigSchema.properties));
const isEmpty = (v: unknown) => v == null || v === false || v === '' || (Array.isArray(v) && v.length === 0) || (typeof v === 'object' && v !== null && !Array.isArray(v) && Object.keys(v).length === 0);

/**
 * Turns an HF PEFT LoRA `adapter_config.json` into a {@link LoraConfig}.
 *
 * Keeps the settings peftkit implements; ignores where-it-came-from fields; accepts HF features
 * peftkit lacks while they are off and refuses them when on; ignores (with one warning) unknown
 * keys whose value is null, false or empty, as newer PEFT versions add such keys every release;
 * refuses unknown keys with other values.
 * @param file - the config's path, for messages.
 * @throws UserError naming the file and field (JSON pointer).
 */
export function loraConfigFromHf(raw: Record<string, unknown>, file = HF_ADAPTER_CONFIG): { config: LoraConfig; warnings: string[] } {
  if (raw.peft_type !== 'LORA') {
    throw new UserError(`${file}: peft_type is ${JSON.stringify(raw.peft_type)}, not "LORA"`, { file, pointer: '/peft_type', hint: 'load it with the method it was made with' });
  }
  const config: Record<string, unknown> = {};
  const ignored: string[] = [];
  const warnings: string[] = [];
  for (const [k, v] of Object.entries(raw)) {
    if (SETTINGS.has(k)) {
      config[k] = v;
      continue;
    }
    if (META_FIELDS.has(k)) continue;
    const known = OFF_WHEN[k];
    if (known) {
      if (!known.off(v)) {
        throw new UserError(`${file}: /${k} is ${JSON.stringify(v)}: the adapter uses ${known.feature}, which peftkit does not support`, { file, pointer: `/${k}`, hint: 'use an adapter trained without it' });
      }
      continue;
    }
    if (isEmpty(v)) {
      ignored.push(k);
      continue;
    }
    throw new UserError(`${file}: /${k} = ${JSON.stringify(v)} is a field peftkit does not know; the adapter may rely on a PEFT feature peftkit lacks`, {
      file,
      pointer: `/${k}`,
      hint: 'if the field is harmless for this adapter, remove it from adapter_config.json',
    });
  }
  if (ignored.length) warnings.push(`${file}: ignoring fields peftkit does not know (their values are null, false or empty): ${ignored.join(', ')}`);
  // Initialisation does not matter for a trained adapter, unless it changed the base weights.
  const init = config.init_lora_weights;
  if (typeof init === 'string' && init !== 'gaussian') {
    if (/^(pissa|olora|corda|loftq)/i.test(init)) {
      throw new UserError(`${file}: /init_lora_weights is ${JSON.stringify(init)}: this initialisation rewrites the base weights, so the adapter only works with the base it modified`, {
        file, pointer: '/init_lora_weights', hint: 'convert it to a plain LoRA adapter in PEFT first (save_pretrained with path_initial_model_for_weight_conversion)',
      });
    }
    warnings.push(`${file}: init_lora_weights ${JSON.stringify(init)} is treated as true (it only affects initialisation)`);
    config.init_lora_weights = true;
  }
  // HF writes modules_to_save as a list that may repeat names (["classifier", "classifier"]).
  if (Array.isArray(config.modules_to_save)) config.modules_to_save = [...new Set(config.modules_to_save as string[])];
  const issues = [...schemaIssues(file, '', loraConfigSchema, config).map((i) => ({ pointer: i.pointer, message: i.message, hint: i.hint })), ...validateConfig(config as LoraConfig)];
  if (issues.length) {
    throw new UserError(`${file}: ${issues.map((i) => `${i.pointer}: ${i.message}`).join('; ')}`, { file, pointer: issues[0].pointer, hint: issues[0].hint });
  }
  return { config: config as LoraConfig, warnings };
}

/** What {@link readHfAdapter} returns. */
export interface HfLoraAdapter {
  folder: string;
  config: LoraConfig;
  /** `base_model_name_or_path`, or null. */
  baseModelNameOrPath: string | null;
  /** The adapter's tensors by their saved keys; the caller disposes them. */
  tensors: Map<string, tf.Tensor>;
  metadata: Record<string, string>;
  warnings: string[];
}

/**
 * Reads an HF PEFT LoRA adapter folder: its config (see {@link loraConfigFromHf}) and tensors.
 * @throws UserError for a missing or pickle-only folder, a non-LoRA adapter, or a config peftkit cannot honour.
 */
export function readHfAdapter(folder: string, opts: { logger?: StepLogger } = {}): HfLoraAdapter {
  const files = readHfAdapterFolder(folder);
  try {
    const { config, warnings } = loraConfigFromHf(files.config, join(folder, HF_ADAPTER_CONFIG));
    for (const w of warnings) opts.logger?.warn(w);
    const base = files.config.base_model_name_or_path;
    return { folder, config, baseModelNameOrPath: typeof base === 'string' ? base : null, tensors: files.tensors, metadata: files.metadata, warnings };
  } catch (e) {
    for (const t of files.tensors.values()) t.dispose();
    throw e;
  }
}

/**
 * The vocabulary size an adapter's saved tensors say the model had when it was trained, when it is
 * larger than `model`'s: the user resized the embeddings before training (transformers'
 * `resize_token_embeddings`, for added tokens), so the base must be resized the same way first.
 * Read from the input embedding or output head saved whole (`modules_to_save`, `<module>.weight`),
 * their saved base tables (`<module>.base_layer.weight`, HF's `save_embedding_layers`) and the
 * input embedding's `lora_embedding_A` ([r, vocab]).
 */
function adapterVocabRows(model: LoraTargetModel, config: LoraConfig, tensors: Map<string, tf.Tensor>): number | undefined {
  if (!(model instanceof PreTrainedModel)) return undefined;
  const emb = model.getInputEmbeddings();
  const embNames = new Set([...model.namedModules()].filter(([, m]) => m === emb).map(([n]) => n));
  const names = new Set([...embNames, ...model.outputHeadNames()]);
  const toSave = config.modules_to_save ?? [];
  let rows: number | undefined;
  const grow = (n: number) => {
    if (n > emb.numEmbeddings) rows = Math.max(rows ?? 0, n);
  };
  for (const [key, t] of tensors) {
    const k = key.replace(/^base_model\.model\./, '');
    const loraA = /^(.*)\.lora_embedding_A(\.[^.]+)?$/.exec(k);
    if (loraA) {
      if (embNames.has(loraA[1]) && t.rank === 2) grow(t.shape[1]!);
      continue;
    }
    if (t.rank !== 2 || t.shape[1] !== emb.dim) continue;
    const base = /^(.*)\.base_layer\.weight$/.exec(k);
    if (base) {
      if (names.has(base[1])) grow(t.shape[0]!);
      continue;
    }
    const name = k.replace(/\.weight$/, '');
    const saved = toSave.some((m) => name === m || name.endsWith(`.${m}`));
    if (saved && names.has(name)) grow(t.shape[0]!);
  }
  return rows;
}

/**
 * Injects the adapter saved in `folder` into `model` (with the adapter's own config) and loads its
 * tensors: HF PEFT's `PeftModel.from_pretrained(model, folder)`. On failure the model is left without it.
 * When the adapter's tensors show a larger vocabulary than the model has (added tokens: the input
 * embedding or output head saved whole in `modules_to_save`, their saved base tables
 * `<module>.base_layer.weight`, or `lora_embedding_A`'s columns), the model's embeddings are resized
 * to that size first (`resizeTokenEmbeddings`, added rows the mean of the old ones, as transformers
 * users call `resize_token_embeddings` before loading); saved tables are then loaded over them.
 * @throws UserError as {@link readHfAdapter}, {@link injectLora} and `loadStateDict` do (shape errors name the tensor).
 */
export function loadHfLoraAdapter(model: LoraTargetModel, folder: string, opts: { adapterName?: string; logger?: StepLogger } = {}): LoraAdapterHandle & { adapterWarnings: string[] } {
  const adapter = readHfAdapter(folder, opts);
  try {
    const rows = adapterVocabRows(model, adapter.config, adapter.tensors);
    if (rows !== undefined) {
      const note = `${folder}: the adapter's vocabulary has ${rows} tokens, the model's had ${(model as PreTrainedModel).dims().vocabSize}: resized the model's token embeddings (and output head) to ${rows} (resizeTokenEmbeddings; the adapter's saved rows are loaded over them)`;
      resizeTokenEmbeddings(model as PreTrainedModel, rows);
      adapter.warnings.push(note);
      opts.logger?.info(note);
    }
    const handle = injectLora(model, adapter.config, { adapterName: opts.adapterName, logger: opts.logger });
    try {
      handle.loadStateDict(adapter.tensors);
    } catch (e) {
      handle.dispose();
      throw e;
    }
    return Object.assign(handle, { adapterWarnings: adapter.warnings });
  } finally {
    for (const t of adapter.tensors.values()) t.dispose();
  }
}
