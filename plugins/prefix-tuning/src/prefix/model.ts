/**
 * Prefix tuning (Li and Liang 2021): every attention layer attends to P trained key and value
 * positions before the real tokens. As HF PEFT's `PrefixEncoder` (peft/tuners/prefix_tuning/model.py)
 * and `PeftModel.get_prompt` (peft/peft_model.py), including its grouped-query-attention sizes
 * (token_dim = head_dim × num_key_value_heads).
 */
import * as tf from '@tensorflow/tfjs';
import { UserError, type MethodContext, type PeftMethod } from '@peftkit/core';
import { Linear, Module, nextSeed, type KVCache, type ModelInputs, type PreTrainedModel } from '@peftkit/models';
import schema from './config.schema.json' with { type: 'json' };
import type { PrefixTuningConfig } from './config.generated.js';
import { PromptLearningHandle, refuseSequenceClassification, batchSize, beginInject, extendAttentionMask, promptLearningIssues, resolveTarget, shiftPositionIds, taskTypeOf, type ConfigIssue, type InjectTarget } from '../virtual-tokens.js';
import { PROMPT_EMBEDDINGS_KEY, prefixTuningConfigFromHf, promptEmbeddingsFrom, withPromptLearningFolder } from '../hf-format.js';

/** A prefix-tuning config with the model's values filled in. */
export interface ResolvedPrefixTuningConfig {
  num_virtual_tokens: number;
  /** head_dim × num_key_value_heads. */
  token_dim: number;
  num_transformer_submodules: number;
  /** The model's key/value heads. */
  num_attention_heads: number;
  num_layers: number;
  prefix_projection: boolean;
  encoder_hidden_size: number;
  task_type: string;
}

/** Checks beyond the schema. Pointers relative to the config. */
export function validatePrefixTuningConfig(config: PrefixTuningConfig): ConfigIssue[] {
  return promptLearningIssues(config);
}

/**
 * Fills the config's nulls from the model as HF PEFT's `_prepare_prompt_learning_config`, with its
 * grouped-query-attention rule: token_dim = hidden / heads × kv_heads and heads = kv_heads (here
 * head_dim × kv_heads, the same when head_dim = hidden / heads).
 * @throws UserError when a given size does not fit the model
 */
export function resolvePrefixTuningConfig(config: PrefixTuningConfig, model: PreTrainedModel): ResolvedPrefixTuningConfig {
  const dims = model.dims();
  const tokenDim = dims.headDim * dims.numKeyValueHeads;
  if (config.token_dim != null && config.token_dim !== tokenDim && config.token_dim !== dims.hiddenSize) {
    throw new UserError(`prefix-tuning: token_dim ${config.token_dim} does not fit the model: its keys and values are ${dims.numKeyValueHeads} heads × ${dims.headDim} = ${tokenDim} wide`, { pointer: '/token_dim', hint: 'leave token_dim null' });
  }
  if (config.num_layers != null && config.num_layers !== dims.numLayers) {
    throw new UserError(`prefix-tuning: num_layers ${config.num_layers} differs from the model's ${dims.numLayers} layers`, { pointer: '/num_layers', hint: 'leave num_layers null' });
  }
  if (config.num_attention_heads != null && config.num_attention_heads !== dims.numKeyValueHeads && config.num_attention_heads !== dims.numAttentionHeads) {
    throw new UserError(`prefix-tuning: num_attention_heads ${config.num_attention_heads} fits neither the model's ${dims.numAttentionHeads} heads nor its ${dims.numKeyValueHeads} key/value heads`, { pointer: '/num_attention_heads', hint: 'leave num_attention_heads null' });
  }
  return {
    num_virtual_tokens: config.num_virtual_tokens ?? 20,
    token_dim: tokenDim,
    num_transformer_submodules: 1,
    num_attention_heads: dims.numKeyValueHeads,
    num_layers: dims.numLayers,
    prefix_projection: config.prefix_projection ?? false,
    encoder_hidden_size: config.encoder_hidden_size ?? tokenDim,
    task_type: config.task_type ?? taskTypeOf(model),
  };
}

/** HF's `transform`: `nn.Sequential(Linear(token_dim, encoder_hidden_size), Tanh(), Linear(encoder_hidden_size, L·2·token_dim))`. */
class PrefixTransform extends Module {
  constructor(readonly first: Linear, readonly second: Linear) {
    super();
    this.registerModule('0', first);
    this.registerModule('2', second);
  }
  forward(x: tf.Tensor): tf.Tensor {
    return tf.tidy(() => this.second.forward(tf.tanh(this.first.forward(x))));
  }
}

/**
 * HF PEFT's `PrefixEncoder`: a table `embedding.weight` of [P, L·2·token_dim], or, with
 * `prefix_projection`, a [P, token_dim] table and the `transform` MLP. The prompt tokens are always
 * 0 .. P-1, so the whole table is used and no gather (whose gradient the WASM backend lacks) is needed.
 */
export class PrefixEncoder extends Module {
  readonly embedding: tf.Variable;
  transform?: PrefixTransform;

  /**
   * @param table - a saved prefix [P, L·2·token_dim] to start from (then no MLP, as HF in inference mode)
   */
  constructor(readonly c: ResolvedPrefixTuningConfig, table?: tf.Tensor) {
    super();
    const P = c.num_virtual_tokens;
    const out = c.num_layers * 2 * c.token_dim;
    if (table) {
      this.embedding = this.registerParameter('embedding.weight', tf.clone(table));
    } else if (c.prefix_projection) {
      // torch.nn.Embedding and torch.nn.Linear default inits.
      this.embedding = this.registerParameter('embedding.weight', tf.randomNormal([P, c.token_dim], 0, 1, 'float32', nextSeed()));
      this.transform = this.registerModule('transform', new PrefixTransform(new Linear(c.token_dim, c.encoder_hidden_size), new Linear(c.encoder_hidden_size, out)));
    } else {
      this.embedding = this.registerParameter('embedding.weight', tf.randomNormal([P, out], 0, 1, 'float32', nextSeed()));
    }
  }

  /** The prefix [P, L·2·token_dim]: the table, or the MLP applied to it. */
  forward(): tf.Tensor2D {
    return (this.transform ? this.transform.forward(this.embedding) : this.embedding) as tf.Tensor2D;
  }
}

/**
 * The handle on one prefix. Saved as HF PEFT does: one tensor `prompt_embeddings`
 * [P, L·2·token_dim], the MLP's output when `prefix_projection` is on.
 *
 * Virtual positions: per layer a key and a value [B, kv_heads, P, head_dim] go in as
 * `pastKeyValues`, the attention mask gets P ones in front, and positions start at P (the model's
 * default after a cache of P, as in HF). The outputs have only the real positions: nothing to strip.
 */
export class PrefixTuningHandle extends PromptLearningHandle {
  readonly method = 'prefix-tuning';
  readonly peftType = 'PREFIX_TUNING';
  private encoder: PrefixEncoder;
  /** The last `prompt_embeddings` computed by {@link PrefixTuningHandle.stateDict} through the MLP. */
  private materialized?: tf.Tensor;

  constructor(name: string, model: PreTrainedModel, readonly resolved: ResolvedPrefixTuningConfig, table?: tf.Tensor) {
    super(name, model, resolved.num_virtual_tokens);
    this.encoder = new PrefixEncoder(resolved, table);
  }

  get config(): Record<string, unknown> {
    return { ...this.resolved };
  }

  /** True while the prefix is computed by the reparameterization MLP. */
  get projected(): boolean {
    return !!this.encoder.transform;
  }

  /** The table itself (`prompt_embeddings`), or the encoder's parameters (`prompt_encoder.*`) with the MLP. */
  trainableParameters(): [string, tf.Variable][] {
    return this.projected ? this.encoder.namedParameters('prompt_encoder') : [[PROMPT_EMBEDDINGS_KEY, this.encoder.embedding]];
  }

  /** The prefix as HF PEFT saves it. With the MLP it is computed here and kept until the next call or {@link dispose}. */
  stateDict(): Map<string, tf.Tensor> {
    if (!this.projected) return new Map([[PROMPT_EMBEDDINGS_KEY, this.encoder.embedding]]);
    this.materialized?.dispose();
    this.materialized = tf.tidy(() => this.encoder.forward());
    return new Map([[PROMPT_EMBEDDINGS_KEY, this.materialized]]);
  }

  /** The prefix [P, L·2·token_dim] as the model sees it now (a new tensor). */
  prefix(): tf.Tensor2D {
    return tf.tidy(() => tf.clone(this.encoder.forward()));
  }

  /**
   * Loads `prompt_embeddings` [P, L·2·token_dim]. A prefix cannot be turned back into the MLP's
   * input, so with `prefix_projection` the MLP is dropped and the table is trained from here on
   * (as HF PEFT loads such an adapter).
   * @throws StateDictError when the tensor is missing, misshapen, or others are present
   */
  loadStateDict(sd: Map<string, tf.Tensor>): void {
    const c = this.resolved;
    const t = promptEmbeddingsFrom(sd, [c.num_virtual_tokens, c.num_layers * 2 * c.token_dim], `prefix tuning "${this.name}"`);
    if (this.projected) {
      this.encoder.dispose();
      this.encoder = new PrefixEncoder(c, t);
    } else {
      this.encoder.embedding.assign(t.dtype === 'float32' ? t : t.cast('float32'));
    }
  }

  /** HF PEFT's `adapter_config.json` fields for PREFIX_TUNING (without `base_model_name_or_path`). */
  adapterConfig(): Record<string, unknown> {
    const c = this.resolved;
    return {
      auto_mapping: null,
      encoder_hidden_size: c.encoder_hidden_size,
      inference_mode: true,
      num_attention_heads: c.num_attention_heads,
      num_layers: c.num_layers,
      num_transformer_submodules: c.num_transformer_submodules,
      num_virtual_tokens: c.num_virtual_tokens,
      peft_type: this.peftType,
      prefix_projection: c.prefix_projection,
      revision: null,
      task_type: c.task_type,
      token_dim: c.token_dim,
    };
  }

  /**
   * The per-layer key and value prefixes, as `get_prompt`: the prefix viewed as
   * [P, L·2, kv_heads, head_dim], permuted to [L·2, kv_heads, P, head_dim]; layer i's key is entry
   * 2i and its value 2i + 1, each broadcast to [B, kv_heads, P, head_dim].
   */
  pastKeyValues(B: number): KVCache {
    const c = this.resolved;
    const P = c.num_virtual_tokens;
    const H = c.num_attention_heads;
    const D = c.token_dim / H;
    return tf.tidy(() => {
      const kv = this.encoder.forward().reshape([P, c.num_layers * 2, H, D]).transpose([1, 2, 0, 3]); // [L·2, H, P, D]
      const parts = tf.unstack(kv, 0).map((x) => tf.broadcastTo(x.expandDims(0), [B, H, P, D]) as tf.Tensor4D); // each [B, H, P, D]
      return Array.from({ length: c.num_layers }, (_, i) => ({ key: parts[2 * i], value: parts[2 * i + 1] }));
    }) as unknown as KVCache;
  }

  protected prepareFresh(inputs: ModelInputs, made: tf.Tensor[]): ModelInputs {
    const B = batchSize(inputs);
    const P = this.numVirtualTokens;
    const pastKeyValues = this.pastKeyValues(B);
    const attentionMask = extendAttentionMask(inputs.attentionMask, P);
    const positionIds = shiftPositionIds(inputs.positionIds, P, false);
    for (const l of pastKeyValues) made.push(l.key, l.value);
    for (const t of [attentionMask, positionIds]) if (t) made.push(t);
    return { ...inputs, pastKeyValues, attentionMask, positionIds };
  }

  dispose(): void {
    this.encoder.dispose();
    this.materialized?.dispose();
    this.materialized = undefined;
  }
}

/**
 * Adds a prefix to `target` (the model is not changed, only frozen) and returns its handle.
 * @param table - a saved prefix [P, L·2·token_dim] to start from
 * @throws UserError for sizes that do not fit the model
 */
export function injectPrefixTuning(target: InjectTarget, config: PrefixTuningConfig, ctx: Partial<MethodContext> = {}, table?: tf.Tensor): PrefixTuningHandle {
  const { model, resolved: c } = beginInject('prefix-tuning', target, config, validatePrefixTuningConfig, resolvePrefixTuningConfig, ctx.seed);
  model.requiresGrad(false);
  const handle = new PrefixTuningHandle(ctx.adapterName ?? 'default', model, c, table);
  const n = handle.trainableParameters().reduce((s, [, v]) => s + v.size, 0);
  ctx.logger?.info(`prefix-tuning: ${c.num_virtual_tokens} virtual tokens × ${c.num_layers} layers × key/value ${c.num_attention_heads} heads × ${c.token_dim / c.num_attention_heads}${handle.projected ? `, MLP ${c.token_dim} → ${c.encoder_hidden_size}` : ''}, ${n.toLocaleString('en-US')} parameters`);
  return handle;
}

/**
 * Reads an HF PEFT PREFIX_TUNING folder and applies its prefix to `target` (as a plain table, also
 * when it was trained with prefix_projection).
 * @throws UserError for a bad folder, another peft_type, or a prefix that does not fit the model
 */
export function loadPrefixTuningAdapter(target: InjectTarget, dir: string, ctx: Partial<MethodContext> = {}): PrefixTuningHandle {
  return withPromptLearningFolder(dir, 'PREFIX_TUNING', ({ file, json, table }) => {
    const config = prefixTuningConfigFromHf(json, file, (m) => ctx.logger?.warn(m));
    const { model } = resolveTarget(target);
    const dims = model.dims();
    const want = [config.num_virtual_tokens ?? table.shape[0], dims.numLayers * 2 * dims.headDim * dims.numKeyValueHeads];
    if (table.shape[0] !== want[0] || table.shape[1] !== want[1]) {
      throw new UserError(`${file}: prompt_embeddings is [${table.shape.join(', ')}] but this model needs [${want.join(', ')}] (num_virtual_tokens × ${dims.numLayers} layers × 2 × ${dims.numKeyValueHeads} key/value heads × ${dims.headDim})`, {
        file, pointer: '/token_dim', hint: `load it onto ${String(json.base_model_name_or_path ?? 'the model it was trained for')}`,
      });
    }
    return injectPrefixTuning(target, { ...config, token_dim: null, num_layers: null, num_attention_heads: null }, ctx, table);
  });
}

/** The registered `prefix-tuning` method (HF PEFT's PREFIX_TUNING). */
export const prefixTuningMethod = {
  name: 'prefix-tuning',
  peftType: 'PREFIX_TUNING',
  family: 'prompt-learning',
  description: 'Prefix tuning (Li and Liang 2021): trained key/value prefixes for every attention layer. HF PEFT format.',
  configSchema: schema,
  validateConfig: validatePrefixTuningConfig,
  inject: (model, config, ctx) => {
    refuseSequenceClassification('prefix-tuning', model);
    return injectPrefixTuning(model, config, ctx);
  },
  loadAdapter: (model, dir, ctx) => loadPrefixTuningAdapter(model, dir, ctx),
  recognizesAdapterConfig: (json) => json.peft_type === 'PREFIX_TUNING',
} satisfies PeftMethod<PrefixTuningConfig, InjectTarget, PrefixTuningHandle>;
