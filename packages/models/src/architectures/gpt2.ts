/**
 * GPT-2 (Radford et al. 2019) as Hugging Face's modeling_gpt2.py: `GPT2Model`, `GPT2LMHeadModel`
 * and `GPT2ForSequenceClassification`, with the same parameter names, so HF checkpoints load as
 * they are. Leaf first: attention, MLP, block, the model, then the heads.
 *
 * Pre-LayerNorm blocks; Conv1D layers (weight [in, out]); learned position embeddings; the LM head
 * is tied to `wte`.
 */
import * as tf from '@tensorflow/tfjs';
import type { JSONSchema7 } from '@peftkit/core';
import { Module, ModuleList, type Layer, type LoadReport } from '../nn/module.js';
import { Conv1D, Dropout, Embedding, LayerNorm, Linear, residualAdd } from '../nn/layers.js';
import { blockForward } from '../nn/checkpoint.js';
import { PreTrainedModel, type KVCache, type LayerKV, type ModelBuildOptions, type ModelConfig, type LinearHead, type ModelInputs, type ModelOutput, type TransformerDims } from '../model.js';
import { appendKV, attentionBias, defaultPositionIds, mergeHeads, scaledDotProductAttention, splitHeads } from './attention.js';
import { requireDivisible, resolveConfig, type Resolved } from './config.js';
import { activation, buildBlocks, initNormal, nestedBuild, normalizeStateDict, plainLinearHead, poolLastNonPadToken, TiedLinear, tidyOutput } from './shared.js';
import type { GPT2Config } from './gpt2-config.generated.js';
import schema from './gpt2-config.schema.json' with { type: 'json' };

export type { GPT2Config };
export type ResolvedGPT2Config = Resolved<GPT2Config> & ModelConfig;

/**
 * Reads a GPT-2 `config.json` object: HF defaults filled, sizes checked.
 * @throws UserError naming the invalid field.
 */
export function gpt2Config(config: ModelConfig, file = 'config.json'): ResolvedGPT2Config {
  const c = resolveConfig<GPT2Config>(schema as JSONSchema7, config, file) as ResolvedGPT2Config;
  requireDivisible(file, c.n_embd, 'n_embd', c.n_head, 'n_head');
  return c;
}

/** Checkpoint keys HF ignores on load: the causal-mask buffers of older files, and a tied head a bare model lacks. */
const IGNORED_KEYS = [/\.attn\.(masked_)?bias$/, /^lm_head\.weight$/];

/** Causal self-attention with a fused q/k/v projection (`c_attn`, [C, 3C]) and output projection `c_proj`. */
export class GPT2Attention extends Module {
  c_attn: Layer;
  c_proj: Layer;
  attn_dropout: Dropout;
  resid_dropout: Dropout;
  readonly numHeads: number;
  readonly headDim: number;
  readonly scale: number;
  constructor(cfg: ResolvedGPT2Config, layerIdx: number) {
    super();
    const C = cfg.n_embd;
    this.numHeads = cfg.n_head;
    this.headDim = C / cfg.n_head;
    this.scale = (cfg.scale_attn_weights ? 1 / Math.sqrt(this.headDim) : 1) / (cfg.scale_attn_by_inverse_layer_idx ? layerIdx + 1 : 1);
    this.c_attn = this.registerModule('c_attn', new Conv1D(C, 3 * C));
    this.c_proj = this.registerModule('c_proj', new Conv1D(C, C));
    this.attn_dropout = this.registerModule('attn_dropout', new Dropout(cfg.attn_pdrop));
    this.resid_dropout = this.registerModule('resid_dropout', new Dropout(cfg.resid_pdrop));
  }
  /**
   * @param x - [B, T, C]
   * @param bias - additive mask [B or 1, 1, T, P + T]
   * @param past - this layer's cached or prefix keys/values [B, H, P, D]
   * @returns output [B, T, C] and the keys/values including the current ones [B, H, P + T, D]
   */
  forward(x: tf.Tensor3D, bias: tf.Tensor4D | undefined, past?: LayerKV): { output: tf.Tensor3D; present: LayerKV } {
    const C = x.shape[2];
    const [q, k, v] = tf.split(this.c_attn.forward(x), [C, C, C], -1).map((t) => splitHeads(t, this.numHeads, this.headDim)); // [B, H, T, D]
    const present = appendKV(past, k, v); // [B, H, P + T, D]
    const y = scaledDotProductAttention(q, present.key, present.value, this.scale, bias, this.attn_dropout.draw());
    const output = this.resid_dropout.forward(this.c_proj.forward(mergeHeads(y))) as tf.Tensor3D; // [B, T, C]
    return { output, present };
  }
}

/** The feed-forward block: `c_proj(act(c_fc(x)))`, width n_inner (default 4C). */
export class GPT2MLP extends Module {
  c_fc: Layer;
  c_proj: Layer;
  dropout: Dropout;
  private readonly act: (x: tf.Tensor) => tf.Tensor;
  constructor(cfg: ResolvedGPT2Config) {
    super();
    const inner = cfg.n_inner ?? 4 * cfg.n_embd;
    this.c_fc = this.registerModule('c_fc', new Conv1D(cfg.n_embd, inner));
    this.c_proj = this.registerModule('c_proj', new Conv1D(inner, cfg.n_embd));
    this.dropout = this.registerModule('dropout', new Dropout(cfg.resid_pdrop));
    this.act = activation(cfg.activation_function);
  }
  /** [B, T, C] → [B, T, C]. */
  forward(x: tf.Tensor): tf.Tensor {
    return this.dropout.forward(this.c_proj.forward(this.act(this.c_fc.forward(x))));
  }
}

/** One pre-LN block: `x + attn(ln_1(x))`, then `x + mlp(ln_2(x))`. */
export class GPT2Block extends Module {
  ln_1: Layer;
  attn: GPT2Attention;
  ln_2: Layer;
  mlp: GPT2MLP;
  constructor(cfg: ResolvedGPT2Config, layerIdx: number) {
    super();
    this.ln_1 = this.registerModule('ln_1', new LayerNorm(cfg.n_embd, cfg.layer_norm_epsilon));
    this.attn = this.registerModule('attn', new GPT2Attention(cfg, layerIdx));
    this.ln_2 = this.registerModule('ln_2', new LayerNorm(cfg.n_embd, cfg.layer_norm_epsilon));
    this.mlp = this.registerModule('mlp', new GPT2MLP(cfg));
  }
  /** x [B, T, C] → [B, T, C], and this layer's keys/values. */
  forward(x: tf.Tensor3D, bias: tf.Tensor4D | undefined, past?: LayerKV): { output: tf.Tensor3D; present: LayerKV } {
    const a = this.attn.forward(this.ln_1.forward(x) as tf.Tensor3D, bias, past);
    const h = residualAdd(x, a.output) as tf.Tensor3D;
    const output = residualAdd(h, this.mlp.forward(this.ln_2.forward(h))) as tf.Tensor3D;
    return { output, present: a.present };
  }
}

/**
 * The bare transformer (`GPT2Model`): token + position embeddings, `n_layer` blocks, final
 * LayerNorm. As a model of its own its parameter names have no prefix (`wte.weight`,
 * `h.0.attn.c_attn.weight`); its `logits` are the last hidden states [B, T, C].
 */
export class GPT2Model extends PreTrainedModel {
  readonly config: ResolvedGPT2Config;
  readonly task = 'base' as const;
  wte: Embedding;
  wpe: Embedding;
  drop: Dropout;
  h: ModuleList<GPT2Block>;
  ln_f: Layer;
  constructor(config: ModelConfig, file = 'config.json', build?: ModelBuildOptions) {
    super();
    const cfg = (this.config = gpt2Config(config, file));
    this.wte = this.registerModule('wte', new Embedding(cfg.vocab_size, cfg.n_embd));
    this.wpe = this.registerModule('wpe', new Embedding(cfg.n_positions, cfg.n_embd));
    this.drop = this.registerModule('drop', new Dropout(cfg.embd_pdrop));
    this.h = this.registerModule('h', buildBlocks(cfg.n_layer, (i) => new GPT2Block(cfg, i), 'h.', build));
    this.ln_f = this.registerModule('ln_f', new LayerNorm(cfg.n_embd, cfg.layer_norm_epsilon));
  }

  /**
   * @returns logits = lastHiddenState [B, T, C]; pastKeyValues [B, H, P + T, D] per layer when `useCache`.
   * @throws Error when both or neither of inputIds / inputsEmbeds are given, the cache has the wrong
   *   number of layers, or past + current positions exceed n_positions.
   */
  forward(inputs: ModelInputs): ModelOutput {
    return tidyOutput(() => {
      const { inputIds, inputsEmbeds, pastKeyValues: past } = inputs;
      if (!inputIds === !inputsEmbeds) throw new Error('GPT-2: give exactly one of inputIds and inputsEmbeds');
      const [, T] = (inputIds ?? inputsEmbeds!).shape;
      if (past && past.length !== this.h.length) throw new Error(`GPT-2: pastKeyValues has ${past.length} layers, the model has ${this.h.length}`);
      const P = past?.[0]?.key.shape[2] ?? 0;
      if (!inputs.positionIds && P + T > this.config.n_positions) {
        throw new Error(`GPT-2: ${P} past + ${T} current positions exceed n_positions (${this.config.n_positions})`);
      }
      const positionIds = inputs.positionIds ?? defaultPositionIds(P, T);
      const tokens = inputsEmbeds ?? this.wte.forward(inputIds!); // [B, T, C]
      let x = this.drop.forward(tf.add(tokens, this.wpe.forward(positionIds))) as tf.Tensor3D; // [B, T, C]
      const bias = attentionBias({ queryLength: T, pastLength: P, attentionMask: inputs.attentionMask, causal: true });
      const presents: KVCache = [];
      for (let i = 0; i < this.h.length; i++) {
        const r = blockForward(this.h, i, x, past?.[i], [bias], inputs.useCache, (b, h, p, [m]) => b.forward(h, m as tf.Tensor4D | undefined, p));
        x = r.output;
        if (r.present) presents.push(r.present);
      }
      x = this.ln_f.forward(x) as tf.Tensor3D;
      return { logits: x, lastHiddenState: x, ...(inputs.useCache ? { pastKeyValues: presents } : {}) };
    });
  }

  dims(): TransformerDims {
    const c = this.config;
    return { numLayers: c.n_layer, hiddenSize: c.n_embd, numAttentionHeads: c.n_head, numKeyValueHeads: c.n_head, headDim: c.n_embd / c.n_head, vocabSize: c.vocab_size };
  }
  getInputEmbeddings(): Embedding {
    return this.wte;
  }
  outputHeadNames(): string[] {
    return [];
  }
  adapterPoints(): { layer: number; attentionOutput: string; feedForwardOutput: string }[] {
    return gpt2AdapterPoints(this.config.n_layer, '');
  }
  override loadStateDict(sd: Map<string, tf.Tensor>, strict = true): LoadReport {
    return super.loadStateDict(normalizeStateDict(new Set(this.stateDict().keys()), sd, 'transformer', IGNORED_KEYS), strict);
  }
}

function gpt2AdapterPoints(n: number, prefix: string) {
  return Array.from({ length: n }, (_, i) => ({ layer: i, attentionOutput: `${prefix}h.${i}.attn.c_proj`, feedForwardOutput: `${prefix}h.${i}.mlp.c_proj` }));
}

/** `GPT2LMHeadModel`: the transformer under `transformer.` and `lm_head` ([vocab, C]), tied to `transformer.wte` unless `tie_word_embeddings` is false. Logits [B, T, vocab]. */
export class GPT2LMHeadModel extends PreTrainedModel {
  readonly config: ResolvedGPT2Config;
  readonly task = 'causal-lm' as const;
  transformer: GPT2Model;
  lm_head: Layer;
  constructor(config: ModelConfig, file = 'config.json', build?: ModelBuildOptions) {
    super();
    this.transformer = this.registerModule('transformer', new GPT2Model(config, file, nestedBuild(build, 'transformer.')));
    this.config = this.transformer.config;
    this.lm_head = this.registerModule(
      'lm_head',
      this.config.tie_word_embeddings ? new TiedLinear(this.transformer.wte.weight) : new Linear(this.config.n_embd, this.config.vocab_size, false),
    );
  }
  forward(inputs: ModelInputs): ModelOutput {
    return tidyOutput(() => {
      const out = this.forwardHidden(inputs);
      return { ...out, logits: this.lm_head.forward(out.lastHiddenState!) }; // [B, T, vocab]
    });
  }
  /** The final hidden states [B, T, C] (`logits` = `lastHiddenState`), without `lm_head`. */
  override forwardHidden(inputs: ModelInputs): ModelOutput {
    return this.transformer.forward(inputs);
  }
  override outputHead(): LinearHead | undefined {
    return plainLinearHead(this.lm_head);
  }
  override optionalStateKeys(): Set<string> {
    return new Set(this.config.tie_word_embeddings ? ['lm_head.weight'] : []);
  }
  dims(): TransformerDims {
    return this.transformer.dims();
  }
  getInputEmbeddings(): Embedding {
    return this.transformer.wte;
  }
  outputHeadNames(): string[] {
    return ['lm_head'];
  }
  adapterPoints() {
    return gpt2AdapterPoints(this.config.n_layer, 'transformer.');
  }
  override loadStateDict(sd: Map<string, tf.Tensor>, strict = true): LoadReport {
    return super.loadStateDict(normalizeStateDict(new Set(this.stateDict().keys()), sd, 'transformer', IGNORED_KEYS.slice(0, 1)), strict);
  }
}

/**
 * `GPT2ForSequenceClassification`: the transformer and `score` (Linear, no bias, [num_labels, C])
 * read at each row's last non-padding token. Logits [B, num_labels].
 */
export class GPT2ForSequenceClassification extends PreTrainedModel {
  readonly config: ResolvedGPT2Config;
  readonly task = 'sequence-classification' as const;
  transformer: GPT2Model;
  score: Layer;
  constructor(config: ModelConfig, file = 'config.json', build?: ModelBuildOptions) {
    super();
    this.transformer = this.registerModule('transformer', new GPT2Model(config, file, nestedBuild(build, 'transformer.')));
    this.config = this.transformer.config;
    const score = new Linear(this.config.n_embd, this.config.num_labels, false);
    initNormal(score, this.config.initializer_range);
    this.score = this.registerModule('score', score);
  }
  /** @throws Error for a batch of more than one row without `pad_token_id` (as HF). */
  forward(inputs: ModelInputs): ModelOutput {
    return tidyOutput(() => {
      const out = this.transformer.forward(inputs);
      const pooled = poolLastNonPadToken(out.lastHiddenState!, inputs.inputIds, this.config.pad_token_id); // [B, C]
      return { ...out, logits: this.score.forward(pooled) }; // [B, num_labels]
    });
  }
  dims(): TransformerDims {
    return this.transformer.dims();
  }
  getInputEmbeddings(): Embedding {
    return this.transformer.wte;
  }
  outputHeadNames(): string[] {
    return ['score'];
  }
  adapterPoints() {
    return gpt2AdapterPoints(this.config.n_layer, 'transformer.');
  }
  override loadStateDict(sd: Map<string, tf.Tensor>, strict = true): LoadReport {
    return super.loadStateDict(normalizeStateDict(new Set(this.stateDict().keys()), sd, 'transformer', IGNORED_KEYS), strict);
  }
}
