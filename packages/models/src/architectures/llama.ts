/**
 * The Llama family (Touvron et al. 2023) as Hugging Face's modeling_llama.py, modeling_qwen2.py and
 * modeling_mistral.py: `LlamaModel`, `*ForCausalLM`, `*ForSequenceClassification`, with HF's
 * parameter names (`model.layers.0.self_attn.q_proj.weight`). SmolLM is a Llama.
 *
 * Pre-RMSNorm blocks, rotary position embeddings (Su et al. 2021) in HF's `rotate_half` layout,
 * grouped-query attention (`num_key_value_heads`), SwiGLU MLP (Shazeer 2020). Qwen2 adds biases to
 * q/k/v; Mistral attends within a sliding window. Leaf first.
 */
import * as tf from '@tensorflow/tfjs';
import { UserError, type JSONSchema7 } from '@peftkit/core';
import { Module, ModuleList, type Layer, type LoadReport } from '../nn/module.js';
import { Embedding, Linear, RMSNorm, dropoutDraw, residualAdd } from '../nn/layers.js';
import { gatedActivation } from '../nn/activations.js';
import { blockForward } from '../nn/checkpoint.js';
import { PreTrainedModel, type KVCache, type LayerKV, type ModelBuildOptions, type ModelConfig, type LinearHead, type ModelInputs, type ModelOutput, type TransformerDims } from '../model.js';
import { applyRotary } from '../kernels/rotary.js';
import { appendKV, attentionBias, defaultPositionIds, mergeHeads, scaledDotProductAttention, splitHeads } from './attention.js';
import { requireDivisible, resolveConfig, type Resolved } from './config.js';
import { resolveRopeParameters, ropeDependsOnLength, ropeFrequencies, ropeInvFreqForPositions, type RopeFrequencies, type RopeParameters } from './rope.js';
import { buildBlocks, initNormal, nestedBuild, normalizeStateDict, plainLinearHead, poolLastNonPadToken, TiedLinear, tidyOutput } from './shared.js';
import type { LlamaConfig } from './llama-config.generated.js';
import schema from './llama-config.schema.json' with { type: 'json' };

export type { LlamaConfig };
/**
 * A Llama-family config with defaults filled, `num_key_value_heads` and `head_dim` resolved, and the
 * RoPE settings in `rope_parameters` alone (`rope_theta` and `rope_scaling` are removed).
 */
export type ResolvedLlamaConfig = Resolved<LlamaConfig> & ModelConfig & { num_key_value_heads: number; head_dim: number; rope_parameters: RopeParameters };

/** Where Qwen2Config and MistralConfig default differently from LlamaConfig. */
const FAMILY_DEFAULTS: Record<string, Record<string, unknown>> = {
  qwen2: { vocab_size: 151936, intermediate_size: 22016, max_position_embeddings: 32768, sliding_window: 4096, max_window_layers: 28, bos_token_id: null, eos_token_id: null },
  mistral: { intermediate_size: 14336, num_key_value_heads: 8, max_position_embeddings: 131072, sliding_window: 4096, bos_token_id: 1, eos_token_id: 2 },
};

/**
 * Reads a Llama / Qwen2 / Mistral `config.json` object: HF defaults filled, sizes checked, RoPE
 * settings of transformers 4 (`rope_theta`, `rope_scaling`) or 5 (`rope_parameters`) read into
 * `rope_parameters` (see {@link resolveRopeParameters}).
 * @throws UserError naming the invalid field (an unsupported rope type among them).
 */
export function llamaConfig(config: ModelConfig, file = 'config.json'): ResolvedLlamaConfig {
  const c = resolveConfig<LlamaConfig>(schema as JSONSchema7, config, file, FAMILY_DEFAULTS[config.model_type] ?? {}) as ResolvedLlamaConfig;
  c.num_key_value_heads ??= c.num_attention_heads;
  if (c.head_dim == null) {
    requireDivisible(file, c.hidden_size, 'hidden_size', c.num_attention_heads, 'num_attention_heads');
    c.head_dim = c.hidden_size / c.num_attention_heads;
  }
  requireDivisible(file, c.num_attention_heads, 'num_attention_heads', c.num_key_value_heads, 'num_key_value_heads');
  if (c.head_dim % 2 !== 0) throw new UserError(`${file}: /head_dim (${c.head_dim}) must be even for rotary embeddings`, { file, pointer: '/head_dim' });
  // transformers 5's form only: rope_theta and rope_scaling are read into rope_parameters.
  c.rope_parameters = resolveRopeParameters(c, file, 10000);
  delete (c as Record<string, unknown>).rope_theta;
  delete (c as Record<string, unknown>).rope_scaling;
  if (c.rope_parameters.rope_type === 'longrope') ropeFrequencies(c.rope_parameters, c.head_dim, c.max_position_embeddings, 0, file); // checks the factor lists
  return c;
}

/** Keys of older checkpoints that are buffers, not parameters (HF ignores them). */
const IGNORED_KEYS = [/\.rotary_emb\.inv_freq$/];

/**
 * RoPE's inverse frequencies for the config (see {@link ropeFrequencies}); `seqLen` matters only
 * for the `dynamic` and `longrope` types.
 */
export function ropeInverseFrequencies(c: ResolvedLlamaConfig, seqLen = 0): Float32Array {
  return ropeFrequencies(c.rope_parameters, c.head_dim, c.max_position_embeddings, seqLen).invFreq;
}


/** RoPE tables; no parameters (HF's `inv_freq` is a non-persistent buffer). */
export class LlamaRotaryEmbedding extends Module {
  private readonly params: RopeParameters;
  private readonly headDim: number;
  private readonly maxPositions: number;
  /** The frequencies for sequences up to the pretrained length (all of them, for most rope types). */
  readonly frequencies: RopeFrequencies;
  constructor(cfg: ResolvedLlamaConfig) {
    super();
    this.params = cfg.rope_parameters;
    this.headDim = cfg.head_dim;
    this.maxPositions = cfg.max_position_embeddings;
    this.frequencies = ropeFrequencies(this.params, this.headDim, this.maxPositions);
  }
  /** positionIds [B or 1, T] → cos, sin [B or 1, 1, T, D], D = head_dim, each times the attention scaling. */
  forward(positionIds: tf.Tensor2D): { cos: tf.Tensor4D; sin: tf.Tensor4D } {
    const f = this.frequencies; // its attention scaling does not depend on the length, for any rope type
    return tf.tidy(() => {
      // dynamic and longrope change with the length (transformers' `dynamic_rope_update`: the largest position + 1),
      // taken on the device from the positions, not read back.
      const invFreq = ropeDependsOnLength(this.params) ? ropeInvFreqForPositions(this.params, this.headDim, this.maxPositions, positionIds) : tf.tensor1d(f.invFreq);
      const freqs = tf.mul(positionIds.cast('float32').expandDims(-1), invFreq); // [B, T, D/2]
      const emb = tf.concat([freqs, freqs], -1).expandDims(1); // [B, 1, T, D]
      const scale = (t: tf.Tensor) => (f.attentionScaling === 1 ? t : tf.mul(t, f.attentionScaling));
      return { cos: scale(tf.cos(emb)) as tf.Tensor4D, sin: scale(tf.sin(emb)) as tf.Tensor4D };
    }) as { cos: tf.Tensor4D; sin: tf.Tensor4D };
  }
}

/** Grouped-query self-attention with rotary embeddings; q [H·D], k and v [KVH·D]. */
export class LlamaAttention extends Module {
  q_proj: Layer;
  k_proj: Layer;
  v_proj: Layer;
  o_proj: Layer;
  readonly numHeads: number;
  readonly numKeyValueHeads: number;
  readonly headDim: number;
  private readonly attentionDropout: number;
  constructor(cfg: ResolvedLlamaConfig) {
    super();
    const C = cfg.hidden_size;
    const D = (this.headDim = cfg.head_dim);
    this.numHeads = cfg.num_attention_heads;
    this.numKeyValueHeads = cfg.num_key_value_heads;
    const qkvBias = cfg.model_type === 'qwen2' ? true : cfg.attention_bias;
    const oBias = cfg.model_type === 'qwen2' ? false : cfg.attention_bias;
    this.q_proj = this.registerModule('q_proj', new Linear(C, this.numHeads * D, qkvBias));
    this.k_proj = this.registerModule('k_proj', new Linear(C, this.numKeyValueHeads * D, qkvBias));
    this.v_proj = this.registerModule('v_proj', new Linear(C, this.numKeyValueHeads * D, qkvBias));
    this.o_proj = this.registerModule('o_proj', new Linear(this.numHeads * D, C, oBias));
    this.attentionDropout = cfg.attention_dropout;
  }
  /**
   * @param x - [B, T, C]
   * @param rope - cos/sin [B or 1, 1, T, D]
   * @param past - cached (already rotated) or prefix keys/values [B, KVH, P, D]
   * @returns output [B, T, C]; keys/values [B, KVH, P + T, D]
   */
  forward(x: tf.Tensor3D, rope: { cos: tf.Tensor4D; sin: tf.Tensor4D }, bias: tf.Tensor4D | undefined, past?: LayerKV): { output: tf.Tensor3D; present: LayerKV } {
    const q = applyRotary(splitHeads(this.q_proj.forward(x), this.numHeads, this.headDim), rope.cos, rope.sin); // [B, H, T, D]
    const k = applyRotary(splitHeads(this.k_proj.forward(x), this.numKeyValueHeads, this.headDim), rope.cos, rope.sin); // [B, KVH, T, D]
    const v = splitHeads(this.v_proj.forward(x), this.numKeyValueHeads, this.headDim); // [B, KVH, T, D]
    const present = appendKV(past, k, v);
    const drop = this.training && this.attentionDropout > 0 ? dropoutDraw(this.attentionDropout) : undefined;
    const y = scaledDotProductAttention(q, present.key, present.value, 1 / Math.sqrt(this.headDim), bias, drop);
    return { output: this.o_proj.forward(mergeHeads(y)) as tf.Tensor3D, present };
  }
}

/** SwiGLU: `down_proj(act(gate_proj(x)) * up_proj(x))`. */
export class LlamaMLP extends Module {
  gate_proj: Layer;
  up_proj: Layer;
  down_proj: Layer;
  /** act(gate) * up as one op that keeps only gate and up for the backward pass. */
  private readonly gatedAct: (gate: tf.Tensor, up: tf.Tensor) => tf.Tensor;
  constructor(cfg: ResolvedLlamaConfig) {
    super();
    const bias = cfg.model_type === 'llama' ? cfg.mlp_bias : false;
    this.gate_proj = this.registerModule('gate_proj', new Linear(cfg.hidden_size, cfg.intermediate_size, bias));
    this.up_proj = this.registerModule('up_proj', new Linear(cfg.hidden_size, cfg.intermediate_size, bias));
    this.down_proj = this.registerModule('down_proj', new Linear(cfg.intermediate_size, cfg.hidden_size, bias));
    this.gatedAct = gatedActivation(cfg.hidden_act);
  }
  /** [B, T, C] → [B, T, C]. */
  forward(x: tf.Tensor): tf.Tensor {
    return this.down_proj.forward(this.gatedAct(this.gate_proj.forward(x), this.up_proj.forward(x)));
  }
}

/** One decoder layer: `x + attn(norm(x))`, then `x + mlp(norm(x))`. */
export class LlamaDecoderLayer extends Module {
  self_attn: LlamaAttention;
  mlp: LlamaMLP;
  input_layernorm: Layer;
  post_attention_layernorm: Layer;
  constructor(cfg: ResolvedLlamaConfig) {
    super();
    this.self_attn = this.registerModule('self_attn', new LlamaAttention(cfg));
    this.mlp = this.registerModule('mlp', new LlamaMLP(cfg));
    this.input_layernorm = this.registerModule('input_layernorm', new RMSNorm(cfg.hidden_size, cfg.rms_norm_eps));
    this.post_attention_layernorm = this.registerModule('post_attention_layernorm', new RMSNorm(cfg.hidden_size, cfg.rms_norm_eps));
  }
  forward(x: tf.Tensor3D, rope: { cos: tf.Tensor4D; sin: tf.Tensor4D }, bias: tf.Tensor4D | undefined, past?: LayerKV): { output: tf.Tensor3D; present: LayerKV } {
    const a = this.self_attn.forward(this.input_layernorm.forward(x) as tf.Tensor3D, rope, bias, past);
    const h = residualAdd(x, a.output) as tf.Tensor3D;
    return { output: residualAdd(h, this.mlp.forward(this.post_attention_layernorm.forward(h))) as tf.Tensor3D, present: a.present };
  }
}

/**
 * The bare decoder (`LlamaModel`, also for Qwen2 and Mistral): `embed_tokens`, `layers`, `norm`.
 * As a model of its own its parameter names have no prefix; its `logits` are the last hidden
 * states [B, T, C].
 */
export class LlamaModel extends PreTrainedModel {
  readonly config: ResolvedLlamaConfig;
  readonly task = 'base' as const;
  embed_tokens: Embedding;
  layers: ModuleList<LlamaDecoderLayer>;
  norm: Layer;
  rotary_emb: LlamaRotaryEmbedding;
  constructor(config: ModelConfig, file = 'config.json', build?: ModelBuildOptions) {
    super();
    const cfg = (this.config = llamaConfig(config, file));
    this.embed_tokens = this.registerModule('embed_tokens', new Embedding(cfg.vocab_size, cfg.hidden_size));
    this.layers = this.registerModule('layers', buildBlocks(cfg.num_hidden_layers, () => new LlamaDecoderLayer(cfg), 'layers.', build));
    this.norm = this.registerModule('norm', new RMSNorm(cfg.hidden_size, cfg.rms_norm_eps));
    this.rotary_emb = this.registerModule('rotary_emb', new LlamaRotaryEmbedding(cfg));
  }

  /** The sliding window of layer i, or null (Mistral: every layer; Qwen2: layers ≥ max_window_layers when use_sliding_window). */
  private windowOf(i: number): number | null {
    const c = this.config;
    if (c.model_type === 'mistral') return c.sliding_window;
    if (c.model_type === 'qwen2' && c.use_sliding_window) return i >= (c.max_window_layers as number) ? c.sliding_window : null;
    return null;
  }

  /**
   * @returns logits = lastHiddenState [B, T, C]; pastKeyValues [B, KVH, P + T, D] per layer when `useCache`.
   * @throws Error when both or neither of inputIds / inputsEmbeds are given or the cache has the wrong number of layers.
   */
  forward(inputs: ModelInputs): ModelOutput {
    return tidyOutput(() => {
      const { inputIds, inputsEmbeds, pastKeyValues: past } = inputs;
      if (!inputIds === !inputsEmbeds) throw new Error(`${this.config.model_type}: give exactly one of inputIds and inputsEmbeds`);
      const [, T] = (inputIds ?? inputsEmbeds!).shape;
      if (past && past.length !== this.layers.length) throw new Error(`${this.config.model_type}: pastKeyValues has ${past.length} layers, the model has ${this.layers.length}`);
      const P = past?.[0]?.key.shape[2] ?? 0;
      let x = (inputsEmbeds ?? this.embed_tokens.forward(inputIds!)) as tf.Tensor3D; // [B, T, C]
      const rope = this.rotary_emb.forward(inputs.positionIds ?? defaultPositionIds(P, T));
      const biases = new Map<number | null, tf.Tensor4D | undefined>();
      const biasFor = (w: number | null) => {
        if (!biases.has(w)) biases.set(w, attentionBias({ queryLength: T, pastLength: P, attentionMask: inputs.attentionMask, causal: true, slidingWindow: w }));
        return biases.get(w);
      };
      const presents: KVCache = [];
      for (let i = 0; i < this.layers.length; i++) {
        const r = blockForward(this.layers, i, x, past?.[i], [rope.cos, rope.sin, biasFor(this.windowOf(i))], inputs.useCache, (b, h, p, [cos, sin, m]) =>
          b.forward(h, { cos: cos as tf.Tensor4D, sin: sin as tf.Tensor4D }, m as tf.Tensor4D | undefined, p),
        );
        x = r.output;
        if (r.present) presents.push(r.present);
      }
      x = this.norm.forward(x) as tf.Tensor3D;
      return { logits: x, lastHiddenState: x, ...(inputs.useCache ? { pastKeyValues: presents } : {}) };
    });
  }

  dims(): TransformerDims {
    const c = this.config;
    return { numLayers: c.num_hidden_layers, hiddenSize: c.hidden_size, numAttentionHeads: c.num_attention_heads, numKeyValueHeads: c.num_key_value_heads, headDim: c.head_dim, vocabSize: c.vocab_size };
  }
  getInputEmbeddings(): Embedding {
    return this.embed_tokens;
  }
  outputHeadNames(): string[] {
    return [];
  }
  adapterPoints() {
    return llamaAdapterPoints(this.config.num_hidden_layers, '');
  }
  override loadStateDict(sd: Map<string, tf.Tensor>, strict = true): LoadReport {
    return super.loadStateDict(normalizeStateDict(new Set(this.stateDict().keys()), sd, 'model', [...IGNORED_KEYS, /^lm_head\.weight$/]), strict);
  }
}

function llamaAdapterPoints(n: number, prefix: string) {
  return Array.from({ length: n }, (_, i) => ({ layer: i, attentionOutput: `${prefix}layers.${i}.self_attn.o_proj`, feedForwardOutput: `${prefix}layers.${i}.mlp.down_proj` }));
}

/** `LlamaForCausalLM` (and Qwen2/Mistral): `model.` and `lm_head` ([vocab, C]; tied to `model.embed_tokens` when `tie_word_embeddings`). Logits [B, T, vocab]. */
export class LlamaForCausalLM extends PreTrainedModel {
  readonly config: ResolvedLlamaConfig;
  readonly task = 'causal-lm' as const;
  model: LlamaModel;
  lm_head: Layer;
  constructor(config: ModelConfig, file = 'config.json', build?: ModelBuildOptions) {
    super();
    this.model = this.registerModule('model', new LlamaModel(config, file, nestedBuild(build, 'model.')));
    this.config = this.model.config;
    this.lm_head = this.registerModule(
      'lm_head',
      this.config.tie_word_embeddings ? new TiedLinear(this.model.embed_tokens.weight) : new Linear(this.config.hidden_size, this.config.vocab_size, false),
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
    return this.model.forward(inputs);
  }
  override outputHead(): LinearHead | undefined {
    return plainLinearHead(this.lm_head);
  }
  override optionalStateKeys(): Set<string> {
    return new Set(this.config.tie_word_embeddings ? ['lm_head.weight'] : []);
  }
  dims(): TransformerDims {
    return this.model.dims();
  }
  getInputEmbeddings(): Embedding {
    return this.model.embed_tokens;
  }
  outputHeadNames(): string[] {
    return ['lm_head'];
  }
  adapterPoints() {
    return llamaAdapterPoints(this.config.num_hidden_layers, 'model.');
  }
  override loadStateDict(sd: Map<string, tf.Tensor>, strict = true): LoadReport {
    return super.loadStateDict(normalizeStateDict(new Set(this.stateDict().keys()), sd, 'model', IGNORED_KEYS), strict);
  }
}

/** `LlamaForSequenceClassification` (and Qwen2/Mistral): `model.` and `score` (no bias) at each row's last non-padding token. Logits [B, num_labels]. */
export class LlamaForSequenceClassification extends PreTrainedModel {
  readonly config: ResolvedLlamaConfig;
  readonly task = 'sequence-classification' as const;
  model: LlamaModel;
  score: Layer;
  constructor(config: ModelConfig, file = 'config.json', build?: ModelBuildOptions) {
    super();
    this.model = this.registerModule('model', new LlamaModel(config, file, nestedBuild(build, 'model.')));
    this.config = this.model.config;
    const score = new Linear(this.config.hidden_size, this.config.num_labels, false);
    initNormal(score, this.config.initializer_range);
    this.score = this.registerModule('score', score);
  }
  /** @throws Error for a batch of more than one row without `pad_token_id` (as HF). */
  forward(inputs: ModelInputs): ModelOutput {
    return tidyOutput(() => {
      const out = this.model.forward(inputs);
      const pooled = poolLastNonPadToken(out.lastHiddenState!, inputs.inputIds, this.config.pad_token_id); // [B, C]
      return { ...out, logits: this.score.forward(pooled) }; // [B, num_labels]
    });
  }
  dims(): TransformerDims {
    return this.model.dims();
  }
  getInputEmbeddings(): Embedding {
    return this.model.embed_tokens;
  }
  outputHeadNames(): string[] {
    return ['score'];
  }
  adapterPoints() {
    return llamaAdapterPoints(this.config.num_hidden_layers, 'model.');
  }
  override loadStateDict(sd: Map<string, tf.Tensor>, strict = true): LoadReport {
    return super.loadStateDict(normalizeStateDict(new Set(this.stateDict().keys()), sd, 'model', [...IGNORED_KEYS, /^lm_head\.weight$/]), strict);
  }
}
