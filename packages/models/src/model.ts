import type * as tf from '@tensorflow/tfjs';
import { Module, ModuleList } from './nn/module.js';
import type { Embedding } from './nn/layers.js';

/** A model's `config.json` as Hugging Face writes it (snake_case keys, `model_type` names the architecture). */
export interface ModelConfig {
  model_type: string;
  architectures?: string[];
  [key: string]: unknown;
}

/** One layer's key/value cache: key and value [batch, num_key_value_heads, seq, head_dim]. */
export interface LayerKV {
  key: tf.Tensor4D;
  value: tf.Tensor4D;
}

/** Per-layer key/value tensors: the generation cache, or prefix tuning's virtual keys and values. */
export type KVCache = LayerKV[];

/** Inputs of {@link PreTrainedModel.forward}. Give `inputIds` or `inputsEmbeds`. */
export interface ModelInputs {
  /** Token ids [batch, seq], int32. */
  inputIds?: tf.Tensor2D;
  /** Input embeddings [batch, seq, hidden] in place of `inputIds` (prompt tuning prepends to these). */
  inputsEmbeds?: tf.Tensor3D;
  /**
   * [batch, past + seq]: 1 where a position may be attended to, 0 for padding. Covers the cached
   * (or prefix) positions first, then the current ones. Absent: everything is attended to.
   */
  attentionMask?: tf.Tensor2D;
  /** Position ids [batch, seq]; absent: `past .. past + seq - 1`, as HF computes them. */
  positionIds?: tf.Tensor2D;
  /** BERT's segment ids [batch, seq], int32; absent: zeros. Decoders ignore them. */
  tokenTypeIds?: tf.Tensor2D;
  /** Keys and values to attend to before the current positions (cache or prefix). Not disposed by the model. */
  pastKeyValues?: KVCache;
  /** When true, `forward` returns the new cache (past + current keys/values). */
  useCache?: boolean;
}

/** Outputs of {@link PreTrainedModel.forward}. */
export interface ModelOutput {
  /** Causal LM: [batch, seq, vocab]. Sequence classification: [batch, num_labels]. */
  logits: tf.Tensor;
  /** Last hidden states [batch, seq, hidden]. */
  lastHiddenState?: tf.Tensor3D;
  /** Present when `useCache` was set. */
  pastKeyValues?: KVCache;
  /**
   * Causal LM under prompt tuning: the logits [batch, vocab] of the position just before the first
   * one of `logits` (the last virtual token). They predict the first input token, a target of HF
   * PEFT's loss, which prepends -100 labels for the virtual positions only.
   */
  leadingLogits?: tf.Tensor;
}

/**
 * A causal LM's output head when it is a plain linear map without bias, logits = h · Wᵀ: what a
 * fused head + loss (`lmHeadCrossEntropy`, kernels/lm-head-cross-entropy.ts) needs instead of the logits.
 */
export interface LinearHead {
  /** [vocab, hidden], PyTorch's Linear layout: `lm_head.weight`, or the token embedding itself when tied. Trainable or frozen as the model has it. */
  weight: tf.Variable;
}

/**
 * How a model is built (the last argument of every architecture's constructor and of `createModel`).
 */
export interface ModelBuildOptions {
  /**
   * Called with each transformer block (`model.layers.i`, `transformer.h.i`, `encoder.layer.i`,
   * ...) right after it is built and before the next block's weights exist, with the block's dotted
   * name in the finished model plus a trailing dot (`model.layers.3.`). It may replace the block's
   * submodules (`block.setSubmodule`), e.g. quantize its linear layers and dispose their float32
   * weights, so that the whole float32 model never exists at once (a 1B-parameter model is 4.4 GB
   * in float32, over the WASM heap's 4 GiB). Embeddings, final norms and heads are built outside
   * blocks and are not passed.
   */
  onBlock?: (block: Module, prefix: string) => void;
}

/** What a model is for, as HF's `*ForCausalLM` / `*ForSequenceClassification` / bare `*Model`. */
export type ModelTask = 'causal-lm' | 'sequence-classification' | 'base';

/** Shapes a PEFT method needs to know about a transformer, whatever its architecture. */
export interface TransformerDims {
  numLayers: number;
  hiddenSize: number;
  numAttentionHeads: number;
  numKeyValueHeads: number;
  headDim: number;
  vocabSize: number;
}

/**
 * A Hugging Face architecture on tfjs. Its {@link Module.namedParameters} are exactly the HF
 * state-dict names of the matching transformers class.
 */
export abstract class PreTrainedModel extends Module {
  abstract readonly config: ModelConfig;
  abstract readonly task: ModelTask;
  /** Architecture dimensions. */
  abstract dims(): TransformerDims;
  /** Runs the model. All returned tensors are new; the caller disposes them. */
  abstract forward(inputs: ModelInputs): ModelOutput;
  /**
   * The final hidden states (after the final norm), without the output head: `logits` and
   * `lastHiddenState` are both those states [batch, seq, hidden], as a bare model's output (e.g.
   * `GPT2Model`). Lets the causal-LM loss run the head itself in chunks (`lmHeadCrossEntropy`, kernels/lm-head-cross-entropy.ts)
   * instead of materializing [batch, seq, vocab] logits. `forward` is `forwardHidden` then the head.
   * @throws Error for models without a separable output head (the default; see {@link PreTrainedModel.outputHead}).
   */
  forwardHidden(_inputs: ModelInputs): ModelOutput {
    throw new Error(`${this.constructor.name} has no output head to separate from its hidden states (outputHead() is undefined)`);
  }
  /**
   * The output head that turns {@link PreTrainedModel.forwardHidden}'s states into `forward`'s logits,
   * when it is a plain linear map (a tied head, or `lm_head` without bias). Undefined when the model
   * has none (the default: encoders, classifiers) or when something wraps it: a LoRA, IA3 or DoRA
   * layer, a `modules_to_save` copy, a quantized layer. Then only `forward` gives the logits.
   */
  outputHead(): LinearHead | undefined {
    return undefined;
  }
  /** The token embedding table (`transformer.wte`, `model.embed_tokens`, ...). */
  abstract getInputEmbeddings(): Embedding;
  /** Dotted names of output heads (`lm_head`, `score`, `classifier`): never targets of `all-linear`. */
  abstract outputHeadNames(): string[];
  /**
   * Per layer, the modules whose outputs feed the residual stream after attention and after the
   * feed-forward block (`transformer.h.0.attn.c_proj`, `transformer.h.0.mlp.c_proj`): where
   * bottleneck adapters are inserted.
   */
  abstract adapterPoints(): { layer: number; attentionOutput: string; feedForwardOutput: string }[];

  /**
   * Turns gradient checkpointing on or off for every stack of blocks in the model (transformers'
   * `gradient_checkpointing_enable()` / `_disable()`): while training without a cache, each block
   * keeps only its inputs in the forward pass and is recomputed in the backward pass
   * (`nn/checkpoint.ts`). Costs about one more forward pass per step; saves the blocks' intermediates.
   * @returns the number of block stacks switched (0: the architecture has none).
   */
  gradientCheckpointingEnable(on = true): number {
    let n = 0;
    for (const [, m] of this.namedModules()) {
      if (m instanceof ModuleList) {
        m.gradientCheckpointing = on;
        n++;
      }
    }
    return n;
  }
}

/** What flows through a `base-model` or `quantized-model` port: the model and what it was loaded with. */
export interface LoadedModel {
  model: PreTrainedModel;
  /** The tokenizer from the same folder, when it has one. */
  tokenizer?: import('./tokenizer/tokenizer.js').Tokenizer;
  /** Local folder or hub id it came from (written as `base_model_name_or_path`). */
  source: string;
  /** Quantization applied to the base, if any (e.g. `{quant_type: 'nf4', blocksize: 64}`). */
  quantization?: Record<string, unknown>;
}

export type { Embedding };
