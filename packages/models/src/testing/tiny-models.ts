/**
 * Tiny models of the four architectures of @peftkit/models (random weights, eval mode), token ids
 * and tensor comparisons, for the tests of the method plugins.
 */
import * as tf from '@tensorflow/tfjs';
// The package entry, not architectures/ directly: importing it also registers the WASM kernels.
import { createModel, type ModelConfig, type PreTrainedModel } from '../index.js';

/** The architectures {@link TINY_CONFIGS} has a config for. */
export type TinyModelType = 'gpt2' | 'llama' | 'bert' | 'distilbert';

/** Configs of tiny models: hidden 16, 2 layers, vocab 50. Llama has grouped-query attention (4 heads, 2 key/value heads). */
export const TINY_CONFIGS: Readonly<Record<TinyModelType, ModelConfig>> = {
  gpt2: { model_type: 'gpt2', architectures: ['GPT2LMHeadModel'], vocab_size: 50, n_embd: 16, n_layer: 2, n_head: 2, n_positions: 64 },
  llama: { model_type: 'llama', architectures: ['LlamaForCausalLM'], vocab_size: 50, hidden_size: 16, intermediate_size: 32, num_hidden_layers: 2, num_attention_heads: 4, num_key_value_heads: 2, max_position_embeddings: 64 },
  bert: { model_type: 'bert', architectures: ['BertModel'], vocab_size: 50, hidden_size: 16, intermediate_size: 32, num_hidden_layers: 2, num_attention_heads: 2, max_position_embeddings: 64 },
  distilbert: { model_type: 'distilbert', architectures: ['DistilBertModel'], vocab_size: 50, dim: 16, hidden_dim: 32, n_layers: 2, n_heads: 2, max_position_embeddings: 64 },
};

/** A tiny model of `type` (its {@link TINY_CONFIGS} entry), or of `config`; eval mode, weights from the seeded stream. */
export function tinyModel(type: TinyModelType | ModelConfig): PreTrainedModel {
  return createModel(typeof type === 'string' ? TINY_CONFIGS[type] : type);
}

/** A second model with the same weights as `model` (built from the same config, state dict copied). */
export function cloneModel(model: PreTrainedModel): PreTrainedModel {
  const copy = createModel(model.config);
  copy.loadStateDict(model.stateDict(), false);
  return copy;
}

/** Token ids [batch, seq] in [0, vocab), deterministic in `seed` (a 32-bit LCG, Numerical Recipes' constants). */
export function sampleIds(batch: number, seq: number, vocab: number, seed = 1): tf.Tensor2D {
  const ids = new Int32Array(batch * seq);
  let s = seed >>> 0;
  for (let i = 0; i < ids.length; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    ids[i] = s % vocab;
  }
  return tf.tensor2d(ids, [batch, seq], 'int32');
}

/** max |a − b| over all elements. */
export function maxAbsDiff(a: tf.Tensor, b: tf.Tensor): number {
  return tf.tidy(() => tf.max(tf.abs(tf.sub(a, b))).dataSync()[0]);
}

/** The logits of `model` for `ids` [batch, seq] (a new tensor). */
export function logitsOf(model: { forward: PreTrainedModel['forward'] }, ids: tf.Tensor2D): tf.Tensor {
  return tf.tidy(() => model.forward({ inputIds: ids }).logits);
}
