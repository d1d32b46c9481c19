/**
 * The architectures peftkit implements, and {@link createModel}, which picks the class for a
 * `config.json` as HF's `AutoModelFor*` classes do.
 */
import { UserError } from '@peftkit/core';
import type { ModelBuildOptions, ModelConfig, ModelTask, PreTrainedModel } from '../model.js';
import { taskOfArchitecture } from './config.js';
import { GPT2ForSequenceClassification, GPT2LMHeadModel, GPT2Model } from './gpt2.js';
import { LlamaForCausalLM, LlamaForSequenceClassification, LlamaModel } from './llama.js';
import { BertForSequenceClassification, BertModel } from './bert.js';
import { DistilBertForSequenceClassification, DistilBertModel } from './distilbert.js';

type Ctor = new (config: ModelConfig, file?: string, build?: ModelBuildOptions) => PreTrainedModel;

/** Per `model_type`, the class for each task it supports; the first task listed is the default. */
const REGISTRY: Record<string, Partial<Record<ModelTask, Ctor>> & { defaultTask: ModelTask }> = {
  gpt2: { defaultTask: 'causal-lm', 'causal-lm': GPT2LMHeadModel, 'sequence-classification': GPT2ForSequenceClassification, base: GPT2Model },
  llama: { defaultTask: 'causal-lm', 'causal-lm': LlamaForCausalLM, 'sequence-classification': LlamaForSequenceClassification, base: LlamaModel },
  qwen2: { defaultTask: 'causal-lm', 'causal-lm': LlamaForCausalLM, 'sequence-classification': LlamaForSequenceClassification, base: LlamaModel },
  mistral: { defaultTask: 'causal-lm', 'causal-lm': LlamaForCausalLM, 'sequence-classification': LlamaForSequenceClassification, base: LlamaModel },
  bert: { defaultTask: 'base', 'sequence-classification': BertForSequenceClassification, base: BertModel },
  distilbert: { defaultTask: 'base', 'sequence-classification': DistilBertForSequenceClassification, base: DistilBertModel },
};

/** The `model_type` values {@link createModel} accepts. */
export const SUPPORTED_MODEL_TYPES: readonly string[] = Object.keys(REGISTRY);

/** The tasks a `model_type` supports (empty when the type is unsupported). */
export function supportedTasks(modelType: string): ModelTask[] {
  const e = REGISTRY[modelType];
  return e ? (['causal-lm', 'sequence-classification', 'base'] as ModelTask[]).filter((t) => e[t]) : [];
}

/**
 * The task a config's `architectures[0]` names (`GPT2LMHeadModel` → causal-lm,
 * `DistilBertForSequenceClassification` → sequence-classification, `BertModel` → base), else the
 * model type's default (causal-lm for decoders, base for encoders).
 */
export function inferTask(config: ModelConfig): ModelTask {
  const fromArch = taskOfArchitecture(config.architectures?.[0]);
  const e = REGISTRY[config.model_type];
  if (fromArch && (!e || e[fromArch])) return fromArch;
  return e?.defaultTask ?? 'causal-lm';
}

/**
 * A new model with random weights for an HF `config.json` object, in evaluation mode (as
 * `from_pretrained` leaves it; call `train()` before training with dropout).
 * @param task - what the model is for; default: {@link inferTask}.
 * @param file - where the config came from, for error messages.
 * @param build - how to build it, e.g. a callback that quantizes each transformer block as soon as
 *   it exists ({@link ModelBuildOptions.onBlock}).
 * @throws UserError when `model_type` is unsupported (listing the supported ones), the task is not
 *   available for it, or a config field is invalid.
 */
export function createModel(config: ModelConfig, task?: ModelTask, file = 'config.json', build?: ModelBuildOptions): PreTrainedModel {
  const type = config?.model_type;
  const entry = REGISTRY[type];
  if (!entry) {
    throw new UserError(`${file}: /model_type "${type}" is not supported; supported model types: ${SUPPORTED_MODEL_TYPES.join(', ')}`, {
      file,
      pointer: '/model_type',
      hint: 'use a checkpoint of one of the supported architectures',
    });
  }
  const t = task ?? inferTask(config);
  const Cls = entry[t];
  if (!Cls) {
    throw new UserError(`${file}: model_type "${type}" has no ${t} model; available tasks: ${supportedTasks(type).join(', ')}`, { file, pointer: '/model_type' });
  }
  const model = new Cls(config, file, build);
  model.eval();
  return model;
}

export { GPT2Model, GPT2LMHeadModel, GPT2ForSequenceClassification, gpt2Config, type GPT2Config, type ResolvedGPT2Config } from './gpt2.js';
export { LlamaModel, LlamaForCausalLM, LlamaForSequenceClassification, llamaConfig, ropeInverseFrequencies, type LlamaConfig, type ResolvedLlamaConfig } from './llama.js';
export { ROPE_TYPES, resolveRopeParameters, ropeFrequencies, ropeInvFreqForPositions, type RopeFrequencies, type RopeParameters, type RopeType } from './rope.js';
export { BertModel, BertForSequenceClassification, bertConfig, type BertConfig, type ResolvedBertConfig } from './bert.js';
export { DistilBertModel, DistilBertForSequenceClassification, distilBertConfig, type DistilBertConfig, type ResolvedDistilBertConfig } from './distilbert.js';
export { TiedLinear, activation } from './shared.js';
export { resizeTokenEmbeddings } from './resize-embeddings.js';
