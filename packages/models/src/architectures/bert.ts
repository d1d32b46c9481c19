/**
 * BERT (Devlin et al. 2019) as Hugging Face's modeling_bert.py: `BertModel` and
 * `BertForSequenceClassification`, with HF's parameter names (`bert.encoder.layer.0.attention.self.query.weight`).
 *
 * Post-LayerNorm encoder layers, learned absolute position and token-type embeddings, a tanh
 * pooler on the first token. Leaf first.
 */
import * as tf from '@tensorflow/tfjs';
import type { JSONSchema7 } from '@peftkit/core';
import { Module, ModuleList, type Layer, type LoadReport } from '../nn/module.js';
import { Dropout, Embedding, LayerNorm, Linear, residualAdd } from '../nn/layers.js';
import { blockForward } from '../nn/checkpoint.js';
import { PreTrainedModel, type KVCache, type LayerKV, type ModelBuildOptions, type ModelConfig, type ModelInputs, type ModelOutput, type TransformerDims } from '../model.js';
import { appendKV, attentionBias, defaultPositionIds, mergeHeads, scaledDotProductAttention, splitHeads } from './attention.js';
import { requireDivisible, resolveConfig, type Resolved } from './config.js';
import { activation, buildBlocks, initNormal, nestedBuild, normalizeStateDict, tidyOutput } from './shared.js';
import type { BertConfig } from './bert-config.generated.js';
import schema from './bert-config.schema.json' with { type: 'json' };

export type { BertConfig };
export type ResolvedBertConfig = Resolved<BertConfig> & ModelConfig;

/**
 * Reads a BERT `config.json` object: HF defaults filled, sizes checked.
 * @throws UserError naming the invalid field.
 */
export function bertConfig(config: ModelConfig, file = 'config.json'): ResolvedBertConfig {
  const c = resolveConfig<BertConfig>(schema as JSONSchema7, config, file) as ResolvedBertConfig;
  requireDivisible(file, c.hidden_size, 'hidden_size', c.num_attention_heads, 'num_attention_heads');
  return c;
}

/** Buffers and pretraining heads of checkpoints that the encoder and classifier do not use (HF ignores them with a warning). */
const IGNORED_KEYS = [/(^|\.)embeddings\.position_ids$/, /^cls\./];

/** `word + position + token_type` embeddings, then LayerNorm and dropout. */
export class BertEmbeddings extends Module {
  word_embeddings: Embedding;
  position_embeddings: Embedding;
  token_type_embeddings: Embedding;
  LayerNorm: Layer;
  dropout: Dropout;
  constructor(cfg: ResolvedBertConfig) {
    super();
    this.word_embeddings = this.registerModule('word_embeddings', new Embedding(cfg.vocab_size, cfg.hidden_size));
    this.position_embeddings = this.registerModule('position_embeddings', new Embedding(cfg.max_position_embeddings, cfg.hidden_size));
    this.token_type_embeddings = this.registerModule('token_type_embeddings', new Embedding(cfg.type_vocab_size, cfg.hidden_size));
    this.LayerNorm = this.registerModule('LayerNorm', new LayerNorm(cfg.hidden_size, cfg.layer_norm_eps));
    this.dropout = this.registerModule('dropout', new Dropout(cfg.hidden_dropout_prob));
  }
  /** → [B, T, C]; `inputsEmbeds` replaces the word embeddings. */
  forward(inputIds: tf.Tensor2D | undefined, inputsEmbeds: tf.Tensor3D | undefined, positionIds: tf.Tensor2D, tokenTypeIds: tf.Tensor2D | undefined): tf.Tensor3D {
    const words = inputsEmbeds ?? this.word_embeddings.forward(inputIds!); // [B, T, C]
    const [B, T] = words.shape;
    const types = this.token_type_embeddings.forward(tokenTypeIds ?? tf.zeros([B, T], 'int32'));
    const x = tf.add(tf.add(words, types), this.position_embeddings.forward(positionIds));
    return this.dropout.forward(this.LayerNorm.forward(x)) as tf.Tensor3D;
  }
}

/** Multi-head self-attention projections `query`, `key`, `value`. */
export class BertSelfAttention extends Module {
  query: Layer;
  key: Layer;
  value: Layer;
  dropout: Dropout;
  readonly numHeads: number;
  readonly headDim: number;
  constructor(cfg: ResolvedBertConfig) {
    super();
    this.numHeads = cfg.num_attention_heads;
    this.headDim = cfg.hidden_size / cfg.num_attention_heads;
    this.query = this.registerModule('query', new Linear(cfg.hidden_size, cfg.hidden_size));
    this.key = this.registerModule('key', new Linear(cfg.hidden_size, cfg.hidden_size));
    this.value = this.registerModule('value', new Linear(cfg.hidden_size, cfg.hidden_size));
    this.dropout = this.registerModule('dropout', new Dropout(cfg.attention_probs_dropout_prob));
  }
  /** x [B, T, C] → context [B, T, C]; keys/values [B, H, P + T, D] (P from prefix tuning). */
  forward(x: tf.Tensor3D, bias: tf.Tensor4D | undefined, past?: LayerKV): { output: tf.Tensor3D; present: LayerKV } {
    const q = splitHeads(this.query.forward(x), this.numHeads, this.headDim); // [B, H, T, D]
    const present = appendKV(past, splitHeads(this.key.forward(x), this.numHeads, this.headDim), splitHeads(this.value.forward(x), this.numHeads, this.headDim));
    const y = scaledDotProductAttention(q, present.key, present.value, 1 / Math.sqrt(this.headDim), bias, this.dropout.draw());
    return { output: mergeHeads(y), present };
  }
}

/** `LayerNorm(dropout(dense(h)) + residual)`: BertSelfOutput and BertOutput have this shape. */
export class BertResidualOutput extends Module {
  dense: Layer;
  LayerNorm: Layer;
  dropout: Dropout;
  constructor(cfg: ResolvedBertConfig, inFeatures: number) {
    super();
    this.dense = this.registerModule('dense', new Linear(inFeatures, cfg.hidden_size));
    this.LayerNorm = this.registerModule('LayerNorm', new LayerNorm(cfg.hidden_size, cfg.layer_norm_eps));
    this.dropout = this.registerModule('dropout', new Dropout(cfg.hidden_dropout_prob));
  }
  forward(h: tf.Tensor, residual: tf.Tensor): tf.Tensor3D {
    return this.LayerNorm.forward(residualAdd(this.dropout.forward(this.dense.forward(h)), residual)) as tf.Tensor3D;
  }
}

/** `attention.self` and `attention.output`. */
export class BertAttention extends Module {
  self: BertSelfAttention;
  output: BertResidualOutput;
  constructor(cfg: ResolvedBertConfig) {
    super();
    this.self = this.registerModule('self', new BertSelfAttention(cfg));
    this.output = this.registerModule('output', new BertResidualOutput(cfg, cfg.hidden_size));
  }
  forward(x: tf.Tensor3D, bias: tf.Tensor4D | undefined, past?: LayerKV): { output: tf.Tensor3D; present: LayerKV } {
    const s = this.self.forward(x, bias, past);
    return { output: this.output.forward(s.output, x), present: s.present };
  }
}

/** `intermediate.dense` and its activation. */
export class BertIntermediate extends Module {
  dense: Layer;
  private readonly act: (x: tf.Tensor) => tf.Tensor;
  constructor(cfg: ResolvedBertConfig) {
    super();
    this.dense = this.registerModule('dense', new Linear(cfg.hidden_size, cfg.intermediate_size));
    this.act = activation(cfg.hidden_act);
  }
  forward(x: tf.Tensor): tf.Tensor {
    return this.act(this.dense.forward(x));
  }
}

/** One encoder layer: attention, intermediate, output (post-LN residuals). */
export class BertLayer extends Module {
  attention: BertAttention;
  intermediate: BertIntermediate;
  output: BertResidualOutput;
  constructor(cfg: ResolvedBertConfig) {
    super();
    this.attention = this.registerModule('attention', new BertAttention(cfg));
    this.intermediate = this.registerModule('intermediate', new BertIntermediate(cfg));
    this.output = this.registerModule('output', new BertResidualOutput(cfg, cfg.intermediate_size));
  }
  forward(x: tf.Tensor3D, bias: tf.Tensor4D | undefined, past?: LayerKV): { output: tf.Tensor3D; present: LayerKV } {
    const a = this.attention.forward(x, bias, past);
    return { output: this.output.forward(this.intermediate.forward(a.output), a.output), present: a.present };
  }
}

/** `encoder.layer`. */
export class BertEncoder extends Module {
  layer: ModuleList<BertLayer>;
  constructor(cfg: ResolvedBertConfig, build?: ModelBuildOptions) {
    super();
    this.layer = this.registerModule('layer', buildBlocks(cfg.num_hidden_layers, () => new BertLayer(cfg), 'layer.', build));
  }
}

/** `tanh(dense(h[:, 0]))`: [B, T, C] → [B, C]. */
export class BertPooler extends Module {
  dense: Layer;
  constructor(cfg: ResolvedBertConfig) {
    super();
    this.dense = this.registerModule('dense', new Linear(cfg.hidden_size, cfg.hidden_size));
  }
  forward(h: tf.Tensor3D): tf.Tensor2D {
    const [B, , C] = h.shape;
    return tf.tanh(this.dense.forward(tf.slice(h, [0, 0, 0], [B, 1, C]).reshape([B, C]))) as tf.Tensor2D;
  }
}

/**
 * `BertModel`: embeddings, encoder, pooler. As a model of its own its names have no prefix; its
 * `logits` are the last hidden states [B, T, C]. `pastKeyValues` (prefix tuning) are prepended to
 * every layer's keys and values, as HF's BertSelfAttention does.
 */
export class BertModel extends PreTrainedModel {
  readonly config: ResolvedBertConfig;
  readonly task = 'base' as const;
  embeddings: BertEmbeddings;
  encoder: BertEncoder;
  pooler: BertPooler;
  constructor(config: ModelConfig, file = 'config.json', build?: ModelBuildOptions) {
    super();
    const cfg = (this.config = bertConfig(config, file));
    this.embeddings = this.registerModule('embeddings', new BertEmbeddings(cfg));
    this.encoder = this.registerModule('encoder', new BertEncoder(cfg, nestedBuild(build, 'encoder.')));
    this.pooler = this.registerModule('pooler', new BertPooler(cfg));
  }
  /** Runs the encoder; `pooled` is the pooler output [B, C]. */
  encode(inputs: ModelInputs): ModelOutput & { pooled: tf.Tensor2D } {
    return tidyOutput(() => {
      const { inputIds, inputsEmbeds, pastKeyValues: past } = inputs;
      if (!inputIds === !inputsEmbeds) throw new Error('BERT: give exactly one of inputIds and inputsEmbeds');
      const [, T] = (inputIds ?? inputsEmbeds!).shape;
      const layers = this.encoder.layer;
      if (past && past.length !== layers.length) throw new Error(`BERT: pastKeyValues has ${past.length} layers, the model has ${layers.length}`);
      const P = past?.[0]?.key.shape[2] ?? 0;
      if (!inputs.positionIds && P + T > this.config.max_position_embeddings) {
        throw new Error(`BERT: ${P} past + ${T} current positions exceed max_position_embeddings (${this.config.max_position_embeddings})`);
      }
      let x = this.embeddings.forward(inputIds, inputsEmbeds, inputs.positionIds ?? defaultPositionIds(P, T), inputs.tokenTypeIds); // [B, T, C]
      const bias = attentionBias({ queryLength: T, pastLength: P, attentionMask: inputs.attentionMask, causal: false });
      const presents: KVCache = [];
      for (let i = 0; i < layers.length; i++) {
        const r = blockForward(layers, i, x, past?.[i], [bias], inputs.useCache, (b, h, p, [m]) => b.forward(h, m as tf.Tensor4D | undefined, p));
        x = r.output;
        if (r.present) presents.push(r.present);
      }
      return { logits: x, lastHiddenState: x, pooled: this.pooler.forward(x), ...(inputs.useCache ? { pastKeyValues: presents } : {}) } as ModelOutput;
    }) as ModelOutput & { pooled: tf.Tensor2D };
  }
  /** @returns logits = lastHiddenState [B, T, C]. */
  forward(inputs: ModelInputs): ModelOutput {
    const { pooled, ...out } = this.encode(inputs);
    pooled.dispose();
    return out;
  }
  dims(): TransformerDims {
    return bertDims(this.config);
  }
  getInputEmbeddings(): Embedding {
    return this.embeddings.word_embeddings;
  }
  outputHeadNames(): string[] {
    return [];
  }
  adapterPoints() {
    return bertAdapterPoints(this.config.num_hidden_layers, '');
  }
  override loadStateDict(sd: Map<string, tf.Tensor>, strict = true): LoadReport {
    return super.loadStateDict(normalizeStateDict(new Set(this.stateDict().keys()), sd, 'bert', IGNORED_KEYS), strict);
  }
}

function bertDims(c: ResolvedBertConfig): TransformerDims {
  return { numLayers: c.num_hidden_layers, hiddenSize: c.hidden_size, numAttentionHeads: c.num_attention_heads, numKeyValueHeads: c.num_attention_heads, headDim: c.hidden_size / c.num_attention_heads, vocabSize: c.vocab_size };
}

function bertAdapterPoints(n: number, prefix: string) {
  return Array.from({ length: n }, (_, i) => ({ layer: i, attentionOutput: `${prefix}encoder.layer.${i}.attention.output.dense`, feedForwardOutput: `${prefix}encoder.layer.${i}.output.dense` }));
}

/** `BertForSequenceClassification`: `bert.`, dropout, `classifier` on the pooler output. Logits [B, num_labels]. */
export class BertForSequenceClassification extends PreTrainedModel {
  readonly config: ResolvedBertConfig;
  readonly task = 'sequence-classification' as const;
  bert: BertModel;
  dropout: Dropout;
  classifier: Layer;
  constructor(config: ModelConfig, file = 'config.json', build?: ModelBuildOptions) {
    super();
    this.bert = this.registerModule('bert', new BertModel(config, file, nestedBuild(build, 'bert.')));
    const c = (this.config = this.bert.config);
    this.dropout = this.registerModule('dropout', new Dropout(c.classifier_dropout ?? c.hidden_dropout_prob));
    const classifier = new Linear(c.hidden_size, c.num_labels);
    initNormal(classifier, c.initializer_range);
    this.classifier = this.registerModule('classifier', classifier);
  }
  forward(inputs: ModelInputs): ModelOutput {
    return tidyOutput(() => {
      const { pooled, ...out } = this.bert.encode(inputs);
      return { ...out, logits: this.classifier.forward(this.dropout.forward(pooled)) }; // [B, num_labels]
    });
  }
  dims(): TransformerDims {
    return bertDims(this.config);
  }
  getInputEmbeddings(): Embedding {
    return this.bert.embeddings.word_embeddings;
  }
  outputHeadNames(): string[] {
    return ['classifier'];
  }
  adapterPoints() {
    return bertAdapterPoints(this.config.num_hidden_layers, 'bert.');
  }
  override loadStateDict(sd: Map<string, tf.Tensor>, strict = true): LoadReport {
    return super.loadStateDict(normalizeStateDict(new Set(this.stateDict().keys()), sd, 'bert', IGNORED_KEYS), strict);
  }
}
