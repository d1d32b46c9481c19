/**
 * Prompt tuning (Lester et al. 2021): a trained [P, hidden] table of soft-prompt embeddings put in
 * front of the input embeddings. As HF PEFT's `PromptEmbedding` (peft/tuners/prompt_tuning/model.py)
 * and `PeftModelForCausalLM.forward` (peft/peft_model.py).
 */
import * as tf from '@tensorflow/tfjs';
import { UserError, type MethodContext, type PeftMethod } from '@peftkit/core';
import {
  StateDictError,
  hasTokenizer,
  loadTokenizer,
  nextSeed,
  random,
  type ModelInputs,
  type ModelOutput,
  type PreTrainedModel,
  type Tokenizer,
} from '@peftkit/models';
import schema from './config.schema.json' with { type: 'json' };
import type { PromptTuningConfig } from './config.generated.js';
import { PromptLearningHandle, refuseSequenceClassification, batchSize, beginInject, extendAttentionMask, promptLearningIssues, resolveTarget, shiftPositionIds, taskTypeOf, type ConfigIssue, type InjectTarget } from '../virtual-tokens.js';
import { PROMPT_EMBEDDINGS_KEY, promptEmbeddingsFrom, promptTuningConfigFromHf, withPromptLearningFolder } from '../hf-format.js';

/** A prompt-tuning config with the model's values filled in. */
export interface ResolvedPromptTuningConfig {
  num_virtual_tokens: number;
  token_dim: number;
  num_transformer_submodules: number;
  num_attention_heads: number;
  num_layers: number;
  prompt_tuning_init: 'RANDOM' | 'SAMPLE_VOCAB' | 'TEXT';
  prompt_tuning_init_text: string | null;
  tokenizer_name_or_path: string | null;
  task_type: string;
}

/** Checks beyond the schema. Pointers relative to the config. */
export function validatePromptTuningConfig(config: PromptTuningConfig): ConfigIssue[] {
  const issues: ConfigIssue[] = [];
  if (config.prompt_tuning_init === 'TEXT' && !config.prompt_tuning_init_text) {
    issues.push({ pointer: '/prompt_tuning_init_text', message: 'prompt_tuning_init is TEXT but prompt_tuning_init_text is not set', hint: 'give the text whose token embeddings start the prompt, e.g. "Classify the sentiment of this review:"' });
  }
  return [...issues, ...promptLearningIssues(config)];
}

/**
 * Fills the config's nulls from the model, as HF PEFT's `_prepare_prompt_learning_config`.
 * @throws UserError when token_dim is not the model's hidden size
 */
export function resolvePromptTuningConfig(config: PromptTuningConfig, model: PreTrainedModel): ResolvedPromptTuningConfig {
  const dims = model.dims();
  if (config.token_dim != null && config.token_dim !== dims.hiddenSize) {
    throw new UserError(`prompt-tuning: token_dim ${config.token_dim} does not match the model's hidden size ${dims.hiddenSize}`, { pointer: '/token_dim', hint: 'leave token_dim null' });
  }
  return {
    num_virtual_tokens: config.num_virtual_tokens ?? 20,
    token_dim: dims.hiddenSize,
    num_transformer_submodules: 1,
    num_attention_heads: config.num_attention_heads ?? dims.numAttentionHeads,
    num_layers: config.num_layers ?? dims.numLayers,
    prompt_tuning_init: config.prompt_tuning_init ?? 'RANDOM',
    prompt_tuning_init_text: config.prompt_tuning_init_text ?? null,
    tokenizer_name_or_path: config.tokenizer_name_or_path ?? null,
    task_type: config.task_type ?? taskTypeOf(model),
  };
}

/**
 * The handle on one soft prompt. Its one tensor is `prompt_embeddings` [P, hidden], as in HF PEFT's
 * `adapter_model.safetensors`.
 *
 * Virtual positions: the inputs become `[prompt; embeddings]` ([B, P + T, hidden]) with P ones in
 * front of the attention mask; the outputs' logits and hidden states lose those P positions again,
 * so callers see [B, T, ...] and compute their loss on their own labels (HF instead pads the labels
 * with P ignored positions; the loss is the same).
 */
export class PromptTuningHandle extends PromptLearningHandle {
  readonly method = 'prompt-tuning';
  readonly peftType = 'PROMPT_TUNING';
  /** The soft prompt [P, hidden]. */
  readonly promptEmbeddings: tf.Variable;

  constructor(name: string, model: PreTrainedModel, readonly resolved: ResolvedPromptTuningConfig, initial: tf.Tensor) {
    super(name, model, resolved.num_virtual_tokens);
    this.promptEmbeddings = tf.variable(initial, true);
  }

  get config(): Record<string, unknown> {
    return { ...this.resolved };
  }

  trainableParameters(): [string, tf.Variable][] {
    return [[PROMPT_EMBEDDINGS_KEY, this.promptEmbeddings]];
  }

  stateDict(): Map<string, tf.Tensor> {
    return new Map([[PROMPT_EMBEDDINGS_KEY, this.promptEmbeddings]]);
  }

  /**
   * Loads `prompt_embeddings` [P, hidden] (also accepted with HF's `base_model.model.` prefix).
   * @throws StateDictError when it is missing, has another shape, or other tensors are present
   */
  loadStateDict(sd: Map<string, tf.Tensor>): void {
    const t = promptEmbeddingsFrom(sd, this.promptEmbeddings.shape, `prompt tuning "${this.name}"`);
    this.promptEmbeddings.assign(t.dtype === 'float32' ? t : t.cast('float32'));
  }

  /** HF PEFT's `adapter_config.json` fields for PROMPT_TUNING (without `base_model_name_or_path`). */
  adapterConfig(): Record<string, unknown> {
    const c = this.resolved;
    return {
      auto_mapping: null,
      inference_mode: true,
      num_attention_heads: c.num_attention_heads,
      num_layers: c.num_layers,
      num_transformer_submodules: c.num_transformer_submodules,
      num_virtual_tokens: c.num_virtual_tokens,
      peft_type: this.peftType,
      prompt_tuning_init: c.prompt_tuning_init,
      prompt_tuning_init_text: c.prompt_tuning_init_text,
      revision: null,
      task_type: c.task_type,
      token_dim: c.token_dim,
      tokenizer_kwargs: null,
      tokenizer_name_or_path: c.tokenizer_name_or_path,
    };
  }

  /** `[prompt; embeddings]`: inputs [B, T] → inputsEmbeds [B, P + T, hidden], mask [B, P + S]. */
  protected prepareFresh(inputs: ModelInputs, made: tf.Tensor[]): ModelInputs {
    const B = batchSize(inputs);
    const P = this.numVirtualTokens;
    const inputsEmbeds = tf.tidy(() => {
      const embeds = inputs.inputsEmbeds ?? (this.model.getInputEmbeddings().forward(inputs.inputIds!) as tf.Tensor3D); // [B, T, C]
      const prompts = tf.broadcastTo(this.promptEmbeddings.expandDims(0), [B, P, this.resolved.token_dim]); // [B, P, C]
      return tf.concat([prompts, embeds], 1) as tf.Tensor3D; // [B, P + T, C]
    });
    const attentionMask = extendAttentionMask(inputs.attentionMask, P);
    const positionIds = shiftPositionIds(inputs.positionIds, P, true);
    for (const t of [inputsEmbeds, attentionMask, positionIds]) if (t) made.push(t);
    return { ...inputs, inputIds: undefined, inputsEmbeds, attentionMask, positionIds };
  }

  /** A causal LM's last virtual position predicts the first input token (see `ModelOutput.leadingLogits`). */
  predictsFirstToken(): boolean {
    return this.enabled && this.model.task === 'causal-lm';
  }

  /**
   * Drops the P virtual positions from per-position outputs: [B, P + T, ...] → [B, T, ...]; a causal
   * LM's logits at the last virtual position become `leadingLogits` [B, vocab].
   */
  protected override postprocessFresh(output: ModelOutput, inputs: ModelInputs, free: tf.Tensor[]): ModelOutput {
    const P = this.numVirtualTokens;
    const T = (inputs.inputIds ?? inputs.inputsEmbeds)!.shape[1];
    const stripped = new Map<tf.Tensor, tf.Tensor>();
    const strip = <X extends tf.Tensor>(x: X | undefined): X | undefined => {
      if (!x || x.rank < 3 || x.shape[1] !== P + T) return x; // pooled outputs ([B, labels]) have no positions
      if (!stripped.has(x)) {
        stripped.set(x, tf.slice(x, [0, P], [-1, T]));
        free.push(x);
      }
      return stripped.get(x) as X;
    };
    const leading = this.model.task === 'causal-lm' && output.logits.rank === 3 && output.logits.shape[1] === P + T ? tf.tidy(() => tf.squeeze(tf.slice(output.logits, [0, P - 1], [-1, 1]), [1])) : undefined;
    return { ...output, logits: strip(output.logits)!, lastHiddenState: strip(output.lastHiddenState), ...(leading ? { leadingLogits: leading } : {}) };
  }

  dispose(): void {
    this.promptEmbeddings.dispose();
  }
}

/**
 * The tokenizer for TEXT init: the one handed over with the model, else the folder named by
 * `tokenizer_name_or_path`.
 * @throws UserError when neither is available
 */
function tokenizerFor(c: ResolvedPromptTuningConfig, given: Tokenizer | undefined): Tokenizer {
  if (given) return given;
  const path = c.tokenizer_name_or_path;
  if (path && hasTokenizer(path)) return loadTokenizer(path);
  throw new UserError(
    path ? `prompt-tuning: tokenizer_name_or_path "${path}" is not a folder holding a tokenizer (tokenizer.json, vocab.json + merges.txt, or vocab.txt)` : 'prompt-tuning: prompt_tuning_init TEXT needs a tokenizer, and none came with the model',
    { pointer: '/tokenizer_name_or_path', hint: 'set tokenizer_name_or_path to the base model\'s folder (it holds tokenizer.json)' },
  );
}

/**
 * The initial soft prompt [P, hidden], as HF's `PromptEmbedding.__init__`: RANDOM N(0, 1)
 * (torch.nn.Embedding's init); SAMPLE_VOCAB rows of the token embedding table at ids drawn
 * uniformly from [0, num_embeddings) with the seeded generator; TEXT the embeddings of the text's
 * ids (special tokens included), repeated ⌈P / n⌉ times and cut to P.
 */
export function initialPromptEmbeddings(c: ResolvedPromptTuningConfig, model: PreTrainedModel, tokenizer?: Tokenizer): tf.Tensor2D {
  const P = c.num_virtual_tokens * c.num_transformer_submodules;
  const wte = model.getInputEmbeddings();
  switch (c.prompt_tuning_init) {
    case 'RANDOM':
      return tf.randomNormal([P, c.token_dim], 0, 1, 'float32', nextSeed());
    case 'SAMPLE_VOCAB': {
      const vocab = wte.weight.shape[0];
      const ids = Array.from({ length: P }, () => Math.floor(random() * vocab));
      return tf.tidy(() => tf.gather(wte.weight, tf.tensor1d(ids, 'int32')) as tf.Tensor2D);
    }
    case 'TEXT': {
      const tok = tokenizerFor(c, tokenizer);
      let ids = tok.encode(c.prompt_tuning_init_text ?? '');
      if (ids.length === 0) throw new UserError(`prompt-tuning: prompt_tuning_init_text ${JSON.stringify(c.prompt_tuning_init_text)} has no tokens`, { pointer: '/prompt_tuning_init_text' });
      if (ids.length < P) ids = Array.from({ length: Math.ceil(P / ids.length) }, () => ids).flat();
      ids = ids.slice(0, P);
      const vocab = wte.weight.shape[0];
      const bad = ids.find((i) => i < 0 || i >= vocab);
      if (bad !== undefined) throw new UserError(`prompt-tuning: the tokenizer gave id ${bad}, outside the model's embedding table (${vocab} rows)`, { pointer: '/tokenizer_name_or_path', hint: 'use the base model\'s own tokenizer' });
      return tf.tidy(() => tf.gather(wte.weight, tf.tensor1d(ids, 'int32')) as tf.Tensor2D);
    }
  }
}

/**
 * Adds a soft prompt to `target` (the model is not changed, only frozen) and returns its handle.
 * @param initial - the prompt to start from ([P, hidden]); absent: drawn per prompt_tuning_init
 * @throws UserError for invalid settings or a TEXT init without a tokenizer
 */
export function injectPromptTuning(target: InjectTarget, config: PromptTuningConfig, ctx: Partial<MethodContext> = {}, initial?: tf.Tensor): PromptTuningHandle {
  const { model, tokenizer, resolved: c } = beginInject('prompt-tuning', target, config, validatePromptTuningConfig, resolvePromptTuningConfig, ctx.seed);
  const init = initial ? tf.clone(initial) : initialPromptEmbeddings(c, model, tokenizer ?? (ctx.tokenizer as Tokenizer | undefined));
  model.requiresGrad(false);
  const handle = new PromptTuningHandle(ctx.adapterName ?? 'default', model, c, init);
  init.dispose();
  ctx.logger?.info(`prompt-tuning: ${c.num_virtual_tokens} virtual tokens × ${c.token_dim} (${c.prompt_tuning_init}), ${handle.promptEmbeddings.size.toLocaleString('en-US')} parameters`);
  return handle;
}

/**
 * Reads an HF PEFT PROMPT_TUNING folder and applies its soft prompt to `target`.
 * @throws UserError for a bad folder, another peft_type, or a prompt of another width than the model
 */
export function loadPromptTuningAdapter(target: InjectTarget, dir: string, ctx: Partial<MethodContext> = {}): PromptTuningHandle {
  return withPromptLearningFolder(dir, 'PROMPT_TUNING', ({ file, json, table }) => {
    const config = promptTuningConfigFromHf(json, file, (m) => ctx.logger?.warn(m));
    const { model } = resolveTarget(target);
    const d = model.dims().hiddenSize;
    if (table.shape[1] !== d) {
      throw new UserError(`${file}: the soft prompt is [${table.shape.join(', ')}], made for a model of hidden size ${table.shape[1]}, but this model's hidden size is ${d}`, { file, pointer: '/token_dim', hint: `load it onto ${String(json.base_model_name_or_path ?? 'the model it was trained for')} or a model of that width` });
    }
    const P = config.num_virtual_tokens ?? table.shape[0];
    if (table.shape[0] !== P) throw new UserError(`${file}: num_virtual_tokens is ${P} but prompt_embeddings has ${table.shape[0]} rows`, { file, pointer: '/num_virtual_tokens' });
    return injectPromptTuning(target, { ...config, token_dim: null }, ctx, table);
  });
}

/** The registered `prompt-tuning` method (HF PEFT's PROMPT_TUNING). */
export const promptTuningMethod = {
  name: 'prompt-tuning',
  peftType: 'PROMPT_TUNING',
  family: 'prompt-learning',
  description: 'Prompt tuning (Lester et al. 2021): trained soft-prompt embeddings in front of the input. HF PEFT format.',
  configSchema: schema,
  validateConfig: validatePromptTuningConfig,
  inject: (model, config, ctx) => {
    refuseSequenceClassification('prompt-tuning', model);
    return injectPromptTuning(model, config, ctx);
  },
  loadAdapter: (model, dir, ctx) => loadPromptTuningAdapter(model, dir, ctx),
  recognizesAdapterConfig: (json) => json.peft_type === 'PROMPT_TUNING',
} satisfies PeftMethod<PromptTuningConfig, InjectTarget, PromptTuningHandle>;
