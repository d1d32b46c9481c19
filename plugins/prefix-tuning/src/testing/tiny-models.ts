/**
 * Helpers for this package's tests beyond `@peftkit/models/testing`: its tiny GPT-2 and Llama
 * configs with an end-of-text id, and the cache a base model computes.
 */
import type { KVCache, ModelConfig, PreTrainedModel } from '@peftkit/models';
import { TINY_CONFIGS } from '@peftkit/models/testing';
import type * as tf from '@tensorflow/tfjs';

/** GPT-2 with hidden 16, 2 heads (head_dim 8), 2 layers, vocab 50, eos 49. */
export const GPT2: ModelConfig = { ...TINY_CONFIGS.gpt2, eos_token_id: 49 };
/** Llama with hidden 16, 4 heads sharing 2 key/value heads (head_dim 4), 2 layers, vocab 50, eos 49. */
export const LLAMA_GQA: ModelConfig = { ...TINY_CONFIGS.llama, eos_token_id: 49 };

/** The keys and values the base model computes for `ids` [1, P] (its cache after reading them). */
export function cacheOf(model: PreTrainedModel, ids: tf.Tensor2D): KVCache {
  const out = model.forward({ inputIds: ids, useCache: true });
  out.logits.dispose();
  if (out.lastHiddenState && out.lastHiddenState !== out.logits) out.lastHiddenState.dispose();
  return out.pastKeyValues!;
}
