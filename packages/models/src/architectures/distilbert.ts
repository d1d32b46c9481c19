/**
 * DistilBERT (Sanh et al. 2019) as Hugging Face's modeling_distilbert.py: `DistilBertModel` and
 * `DistilBertForSequenceClassification`, with HF's parameter names
 * (`distilbert.transformer.layer.0.attention.q_lin.weight`).
 *
 * BERT's post-LayerNorm encoder without token types or pooler; the classifier reads the first
 * token through `pre_classifier` and ReLU. Leaf first.
 */
import * as tf from '@tensorflow/tfjs';
import type { JSONSchema7 } from '@peftkit/core';
import { Module, ModuleList, type Layer, type LoadReport } from '../nn/module.js';
import { Dropout, Embedding, LayerNorm, Linear, residualAdd } from '../nn/layers.js';
import { blockForward } from '../nn/checkpoint.js';
import { PreTrainedModel, type ModelBuildOptions, type ModelConfig, type ModelInputs, type ModelOutput, type TransformerDims } from '../model.js';
import { attentionBias, defaultPositionIds, mergeHeads, scaledDotProductAttention, splitHeads } from './attention.js';
import { requireDivisible, resolveConfig, type Resolved } from './config.js';
import { activation, buildBlocks, initNormal, nestedBuild, normalizeStateDict, tidyOutput } from './shared.js';
import type { DistilBertConfig } from './distilbert-config.generated.js';
import schema from './distilbert-config.schema.json' with { type: 'json' };

export type { DistilBertConfig };
export type ResolvedDistilBertConfig = Resolved<DistilBertConfig> & ModelConfig;

/**
 * Reads a DistilBERT `config.json` object: HF defaults filled, sizes checked.
 * @throws UserError naming the invalid field.
 */
export function distilBertConfig(config: ModelConfig, file = 'config.json'): ResolvedDistilBertConfig {
  const c = resolveConfig<DistilBertConfig>(schema as JSONSchema7, config, file) as ResolvedDistilBertConfig;
  requireDivisible(file, c.dim, 'dim', c.n_heads, 'n_heads');
  return c;
}

/** Buffers and masked-LM heads of checkpoints that the encoder and classifier do not use (HF ignores them). */
const IGNORED_KEYS = [/(^|\.)embeddings\.position_ids$/, /^vocab_(transform|layer_norm|projector)\./];

/** HF's `create_sinusoidal_embeddings`: sin on even columns, cos on odd ones. [n_pos, dim]. */
function sinusoidalTable(nPos: number, dim: number): tf.Tensor2D {
  const out = new Float32Array(nPos * dim);
  for (let pos = 0; pos < nPos; pos++) {
    for (let j = 0; j < dim; j++) {
      const angle = pos / Math.pow(10000, (2 * Math.floor(j / 2)) / dim);
      out[pos * dim + j] = j % 2 === 0 ? Math.sin(angle) : Math.cos(angle);
    }
  }
  return tf.tensor2d(out, [nPos, dim]);
}

/** `word + position` embeddings, then LayerNorm and dropout. */
export class DistilBertEmbeddings extends Module {
  word_embeddings: Embedding;
  position_embeddings: Embedding;
  LayerNorm: Layer;
  dropout: Dropout;
  constructor(cfg: ResolvedDistilBertConfig) {
    super();
    this.word_embeddings = this.registerModule('word_embeddings', new Embedding(cfg.vocab_size, cfg.dim));
    this.position_embeddings = this.registerModule('position_embeddings', new Embedding(cfg.max_position_embeddings, cfg.dim));
    if (cfg.sinusoidal_pos_embds) {
      const table = sinusoidalTable(cfg.max_position_embeddings, cfg.dim);
      this.position_embeddings.weight.assign(table);
      table.dispose();
      this.position_embeddings.weight.trainable = false;
    }
    this.LayerNorm = this.registerModule('LayerNorm', new LayerNorm(cfg.dim, 1e-12));
    this.dropout = this.registerModule('dropout', new Dropout(cfg.dropout));
  }
  forward(inputIds: tf.Tensor2D | undefined, inputsEmbeds: tf.Tensor3D | undefined, positionIds: tf.Tensor2D): tf.Tensor3D {
    const words = inputsEmbeds ?? this.word_embeddings.forward(inputIds!); // [B, T, C]
    return this.dropout.forward(this.LayerNorm.forward(tf.add(words, this.position_embeddings.forward(positionIds)))) as tf.Tensor3D;
  }
}

/** `q_lin`, `k_lin`, `v_lin`, `out_lin`; scores `(q / √d) kᵀ`. */
export class MultiHeadSelfAttention extends Module {
  q_lin: Layer;
  k_lin: Layer;
  v_lin: Layer;
  out_lin: Layer;
  dropout: Dropout;
  readonly numHeads: number;
  readonly headDim: number;
  constructor(cfg: ResolvedDistilBertConfig) {
    super();
    this.numHeads = cfg.n_heads;
    this.headDim = cfg.dim / cfg.n_heads;
    this.q_lin = this.registerModule('q_lin', new Linear(cfg.dim, cfg.dim));
    this.k_lin = this.registerModule('k_lin', new Linear(cfg.dim, cfg.dim));
    this.v_lin = this.registerModule('v_lin', new Linear(cfg.dim, cfg.dim));
    this.out_lin = this.registerModule('out_lin', new Linear(cfg.dim, cfg.dim));
    this.dropout = this.registerModule('dropout', new Dropout(cfg.attention_dropout));
  }
  /** [B, T, C] → [B, T, C]. */
  forward(x: tf.Tensor3D, bias: tf.Tensor4D | undefined): tf.Tensor3D {
    const heads = (t: tf.Tensor) => splitHeads(t, this.numHeads, this.headDim); // [B, H, T, D]
    const y = scaledDotProductAttention(heads(this.q_lin.forward(x)), heads(this.k_lin.forward(x)), heads(this.v_lin.forward(x)), 1 / Math.sqrt(this.headDim), bias, this.dropout.draw());
    return this.out_lin.forward(mergeHeads(y)) as tf.Tensor3D;
  }
}

/** `dropout(lin2(act(lin1(x))))`. */
export class FFN extends Module {
  lin1: Layer;
  lin2: Layer;
  dropout: Dropout;
  private readonly act: (x: tf.Tensor) => tf.Tensor;
  constructor(cfg: ResolvedDistilBertConfig) {
    super();
    this.dropout = this.registerModule('dropout', new Dropout(cfg.dropout));
    this.lin1 = this.registerModule('lin1', new Linear(cfg.dim, cfg.hidden_dim));
    this.lin2 = this.registerModule('lin2', new Linear(cfg.hidden_dim, cfg.dim));
    this.act = activation(cfg.activation);
  }
  forward(x: tf.Tensor): tf.Tensor {
    return this.dropout.forward(this.lin2.forward(this.act(this.lin1.forward(x))));
  }
}

/** One layer: `sa_layer_norm(attn(x) + x)`, then `output_layer_norm(ffn(h) + h)`. */
export class TransformerBlock extends Module {
  attention: MultiHeadSelfAttention;
  sa_layer_norm: Layer;
  ffn: FFN;
  output_layer_norm: Layer;
  constructor(cfg: ResolvedDistilBertConfig) {
    super();
    this.attention = this.registerModule('attention', new MultiHeadSelfAttention(cfg));
    this.sa_layer_norm = this.registerModule('sa_layer_norm', new LayerNorm(cfg.dim, 1e-12));
    this.ffn = this.registerModule('ffn', new FFN(cfg));
    this.output_layer_norm = this.registerModule('output_layer_norm', new LayerNorm(cfg.dim, 1e-12));
  }
  forward(x: tf.Tensor3D, bias: tf.Tensor4D | undefined): tf.Tensor3D {
    const h = this.sa_layer_norm.forward(residualAdd(this.attention.forward(x, bias), x));
    return this.output_layer_norm.forward(residualAdd(this.ffn.forward(h), h)) as tf.Tensor3D;
  }
}

/** `transformer.layer`. */
export class DistilBertTransformer extends Module {
  layer: ModuleList<TransformerBlock>;
  constructor(cfg: ResolvedDistilBertConfig, build?: ModelBuildOptions) {
    super();
    this.layer = this.registerModule('layer', buildBlocks(cfg.n_layers, () => new TransformerBlock(cfg), 'layer.', build));
  }
}

/**
 * `DistilBertModel`: embeddings and transformer. As a model of its own its names have no prefix;
 * its `logits` are the last hidden states [B, T, C]. Takes no `pastKeyValues` (HF's does not either).
 */
export class DistilBertModel extends PreTrainedModel {
  readonly config: ResolvedDistilBertConfig;
  readonly task = 'base' as const;
  embeddings: DistilBertEmbeddings;
  transformer: DistilBertTransformer;
  constructor(config: ModelConfig, file = 'config.json', build?: ModelBuildOptions) {
    super();
    const cfg = (this.config = distilBertConfig(config, file));
    this.embeddings = this.registerModule('embeddings', new DistilBertEmbeddings(cfg));
    this.transformer = this.registerModule('transformer', new DistilBertTransformer(cfg, nestedBuild(build, 'transformer.')));
  }
  /**
   * @returns logits = lastHiddenState [B, T, C].
   * @throws Error when both or neither of inputIds / inputsEmbeds are given, when pastKeyValues are
   *   given, or when the sequence exceeds max_position_embeddings.
   */
  forward(inputs: ModelInputs): ModelOutput {
    return tidyOutput(() => {
      const { inputIds, inputsEmbeds } = inputs;
      if (!inputIds === !inputsEmbeds) throw new Error('DistilBERT: give exactly one of inputIds and inputsEmbeds');
      if (inputs.pastKeyValues) throw new Error('DistilBERT takes no pastKeyValues (HF DistilBERT has no key/value cache); prefix tuning needs another architecture');
      const [, T] = (inputIds ?? inputsEmbeds!).shape;
      if (!inputs.positionIds && T > this.config.max_position_embeddings) {
        throw new Error(`DistilBERT: ${T} positions exceed max_position_embeddings (${this.config.max_position_embeddings})`);
      }
      let x = this.embeddings.forward(inputIds, inputsEmbeds, inputs.positionIds ?? defaultPositionIds(0, T)); // [B, T, C]
      const bias = attentionBias({ queryLength: T, pastLength: 0, attentionMask: inputs.attentionMask, causal: false });
      const layers = this.transformer.layer;
      for (let i = 0; i < layers.length; i++) {
        x = blockForward(layers, i, x, undefined, [bias], false, (b, h, _p, [m]) => ({ output: b.forward(h, m as tf.Tensor4D | undefined), present: undefined as never })).output;
      }
      return { logits: x, lastHiddenState: x };
    });
  }
  dims(): TransformerDims {
    return distilDims(this.config);
  }
  getInputEmbeddings(): Embedding {
    return this.embeddings.word_embeddings;
  }
  outputHeadNames(): string[] {
    return [];
  }
  adapterPoints() {
    return distilAdapterPoints(this.config.n_layers, '');
  }
  override loadStateDict(sd: Map<string, tf.Tensor>, strict = true): LoadReport {
    return super.loadStateDict(normalizeStateDict(new Set(this.stateDict().keys()), sd, 'distilbert', IGNORED_KEYS), strict);
  }
}

function distilDims(c: ResolvedDistilBertConfig): TransformerDims {
  return { numLayers: c.n_layers, hiddenSize: c.dim, numAttentionHeads: c.n_heads, numKeyValueHeads: c.n_heads, headDim: c.dim / c.n_heads, vocabSize: c.vocab_size };
}

function distilAdapterPoints(n: number, prefix: string) {
  return Array.from({ length: n }, (_, i) => ({ layer: i, attentionOutput: `${prefix}transformer.layer.${i}.attention.out_lin`, feedForwardOutput: `${prefix}transformer.layer.${i}.ffn.lin2` }));
}

/**
 * `DistilBertForSequenceClassification`: `distilbert.`, then on the first token
 * `classifier(dropout(relu(pre_classifier(h))))`. Logits [B, num_labels].
 */
export class DistilBertForSequenceClassification extends PreTrainedModel {
  readonly config: ResolvedDistilBertConfig;
  readonly task = 'sequence-classification' as const;
  distilbert: DistilBertModel;
  pre_classifier: Layer;
  classifier: Layer;
  dropout: Dropout;
  constructor(config: ModelConfig, file = 'config.json', build?: ModelBuildOptions) {
    super();
    this.distilbert = this.registerModule('distilbert', new DistilBertModel(config, file, nestedBuild(build, 'distilbert.')));
    const c = (this.config = this.distilbert.config);
    const pre = new Linear(c.dim, c.dim);
    const cls = new Linear(c.dim, c.num_labels);
    initNormal(pre, c.initializer_range);
    initNormal(cls, c.initializer_range);
    this.pre_classifier = this.registerModule('pre_classifier', pre);
    this.classifier = this.registerModule('classifier', cls);
    this.dropout = this.registerModule('dropout', new Dropout(c.seq_classif_dropout));
  }
  forward(inputs: ModelInputs): ModelOutput {
    return tidyOutput(() => {
      const out = this.distilbert.forward(inputs);
      const h = out.lastHiddenState!;
      const [B, , C] = h.shape;
      const first = tf.slice(h, [0, 0, 0], [B, 1, C]).reshape([B, C]); // [B, C]
      const logits = this.classifier.forward(this.dropout.forward(tf.relu(this.pre_classifier.forward(first)))); // [B, num_labels]
      return { ...out, logits };
    });
  }
  dims(): TransformerDims {
    return distilDims(this.config);
  }
  getInputEmbeddings(): Embedding {
    return this.distilbert.embeddings.word_embeddings;
  }
  outputHeadNames(): string[] {
    return ['pre_classifier', 'classifier'];
  }
  adapterPoints() {
    return distilAdapterPoints(this.config.n_layers, 'distilbert.');
  }
  override loadStateDict(sd: Map<string, tf.Tensor>, strict = true): LoadReport {
    return super.loadStateDict(normalizeStateDict(new Set(this.stateDict().keys()), sd, 'distilbert', IGNORED_KEYS), strict);
  }
}
