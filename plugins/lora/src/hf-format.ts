/**
 * LoRA's side of HF PEFT's adapter folder (`adapter_config.json` + `adapter_model.safetensors`):
 * the LoRA rules for reading `adapter_config.json` ({@link loraConfigFromHf}), and
 * `PeftModel.from_pretrained` for LoRA ({@link loadHfLoraAdapter}). The method-independent file
 * handling is `@peftkit/models`' `peft/hf-adapter-io.ts`.
 */
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { UserError, schemaIssues, type StepLogger } from '@peftkit/core';
import { Embedding, HF_ADAPTER_CONFIG, Linear, TiedLinear, readHfAdapterFolder, writeHfAdapterFiles, type AdapterHandle, type Module } from '@peftkit/models';
import { loraConfigSchema, validateConfig, type LoraConfig } from './config.js';
import { HF_PREFIX, injectLora, type LoraAdapterHandle, type LoraTargetModel } from './model.js';

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

/** What the model must have for {@link resizeEmbeddingsToAdapter}: its token embedding, its output heads. */
type EmbeddingModel = LoraTargetModel & { getInputEmbeddings?(): Module; config?: { vocab_size?: number } };

/**
 * Added tokens: when the adapter's saved embedding table has another number of rows than the
 * model's token embedding (the vocabulary was resized with `resize_token_embeddings` before
 * training, and HF saved the table as `<embed>.base_layer.weight`, or whole as a `modules_to_save`
 * `<embed>.weight`), the model's embedding is replaced by one of the saved size: the saved rows
 * (`base_layer.weight`), or the base's own rows plus the added rows of the trained copy
 * (`modules_to_save`, where HF's resize would have drawn the added rows at random). Its output head
 * follows: a tied head is re-tied to the new table; an untied `Linear` head takes the adapter's head
 * rows (`<head>.weight` of `modules_to_save` or `<head>.base_layer.weight`).
 * `config.vocab_size` is updated. HF PEFT needs `model.resize_token_embeddings(n)` by hand before
 * loading; this does it from the file.
 * @param tensors - the adapter's tensors by saved key (`base_model.model.` prefix)
 * @param file - the weights file, for messages
 * @returns a note saying what was resized, or undefined when nothing was
 * @throws UserError when only `lora_embedding_A` shows the new size (no table to take the added
 *   rows from), or an untied head has no rows of the new size in the file
 */
export function resizeEmbeddingsToAdapter(model: LoraTargetModel, tensors: Map<string, tf.Tensor>, file: string): string | undefined {
  const m = model as EmbeddingModel;
  const emb = m.getInputEmbeddings?.();
  if (!(emb instanceof Embedding)) return undefined;
  const path = model.namedModules().find(([, x]) => x === emb)?.[0];
  if (!path) return undefined;
  const at = (k: string) => tensors.get(`${HF_PREFIX}${k}`);
  // `base_layer.weight` is the resized base table itself; a modules_to_save `weight` is the trained
  // copy, so the base keeps its own rows and takes only the added ones from it.
  const baseTable = at(`${path}.base_layer.weight`);
  const table = baseTable ?? at(`${path}.weight`); // [vocab', dim]
  const loraA = at(`${path}.lora_embedding_A`); // [r, vocab']
  const rows = table?.shape[0] ?? loraA?.shape[1];
  if (rows === undefined || rows === emb.numEmbeddings) return undefined;
  if (!table || table.shape[1] !== emb.dim) {
    throw new UserError(`${file}: ${path}.lora_embedding_A has ${rows} columns but the model's vocabulary has ${emb.numEmbeddings} tokens, and the file holds no ${emb.dim}-wide embedding table to take the other rows from`, {
      file,
      hint: `resize the base model's token embeddings to ${rows} (the tokenizer the adapter was trained with) and save it, then load the adapter onto that`,
    });
  }
  const heads = (model.outputHeadNames?.() ?? []).map((h) => [h, model.getSubmodule(h)] as const);
  const replaced: [string, Module][] = [];
  for (const [h, head] of heads) {
    if (head instanceof TiedLinear && head.weight === emb.weight) continue; // re-tied below
    if (head instanceof Linear && head.outFeatures === emb.numEmbeddings && head.bias === undefined) {
      const headBase = at(`${h}.base_layer.weight`);
      const t = headBase ?? at(`${h}.weight`);
      if (!t || t.shape[0] !== rows) {
        throw new UserError(`${file}: the adapter's vocabulary has ${rows} tokens (${path} is [${table.shape.join(', ')}]) but it holds no ${h} rows for them, and the model's ${h} is not tied to ${path}`, {
          file,
          hint: `resize the base model's token embeddings and ${h} to ${rows} and save it, then load the adapter onto that; or train the adapter with ${h} in modules_to_save`,
        });
      }
      const next = new Linear(head.inFeatures, rows, false);
      const keep = Math.min(rows, head.outFeatures);
      next.weight.assign(headBase ?? tf.tidy(() => (rows > keep ? tf.concat([head.weight.slice([0, 0], [keep, head.inFeatures]), t.slice([keep, 0], [rows - keep, head.inFeatures])], 0) : head.weight.slice([0, 0], [rows, head.inFeatures]))));
      replaced.push([h, next]);
    }
  }
  const next = new Embedding(rows, emb.dim);
  const keep = Math.min(rows, emb.numEmbeddings);
  next.weight.assign(baseTable ?? tf.tidy(() => (rows > keep ? tf.concat([emb.weight.slice([0, 0], [keep, emb.dim]), table.slice([keep, 0], [rows - keep, emb.dim])], 0) : emb.weight.slice([0, 0], [rows, emb.dim]))));
  for (const x of [next, ...replaced.map(([, r]) => r)]) {
    x.requiresGrad(false);
    x.train(emb.training);
  }
  const old = emb.numEmbeddings;
  model.setSubmodule(path, next);
  for (const [h, head] of heads) if (head instanceof TiedLinear && head.weight === emb.weight) model.setSubmodule(h, new TiedLinear(next.weight));
  for (const [h, r] of replaced) model.setSubmodule(h, r);
  if (m.config && typeof m.config.vocab_size === 'number') m.config.vocab_size = rows;
  emb.dispose();
  for (const [h] of replaced) heads.find(([x]) => x === h)?.[1]?.dispose();
  return `the adapter's vocabulary has ${rows} tokens, the model's had ${old}: resized ${path}${heads.length ? ` and ${heads.map(([h]) => h).join(', ')}` : ''} to ${rows}, with the adapter's rows`;
}

/**
 * Injects the adapter saved in `folder` into `model` (with the adapter's own config) and loads its
 * tensors: HF PEFT's `PeftModel.from_pretrained(model, folder)`. When the adapter's saved embedding
 * table has another size (added tokens), the model's embedding and head are resized first
 * ({@link resizeEmbeddingsToAdapter}). On failure the model is left without the adapter.
 * @throws UserError as {@link readHfAdapter}, {@link resizeEmbeddingsToAdapter}, {@link injectLora}
 *   and `loadStateDict` do (shape errors name the tensor).
 */
export function loadHfLoraAdapter(model: LoraTargetModel, folder: string, opts: { adapterName?: string; logger?: StepLogger } = {}): LoraAdapterHandle & { adapterWarnings: string[] } {
  const adapter = readHfAdapter(folder, opts);
  try {
    const resized = resizeEmbeddingsToAdapter(model, adapter.tensors, join(folder, 'adapter_model.safetensors'));
    if (resized) {
      adapter.warnings.push(resized);
      opts.logger?.info(resized);
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
