/**
 * Helpers for this package's tests: tiny models of the four architectures of `@peftkit/models`
 * (random weights, eval mode), scratch folders, deterministic token ids.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { createModel, type ModelConfig, type PreTrainedModel } from '@peftkit/models';

/** Configs of tiny models: hidden 16, 2 layers, vocab 50. Llama has grouped-query attention (4 heads, 2 key/value heads). */
export const TINY_CONFIGS: Record<'gpt2' | 'llama' | 'bert' | 'distilbert', ModelConfig> = {
  gpt2: { model_type: 'gpt2', architectures: ['GPT2LMHeadModel'], vocab_size: 50, n_embd: 16, n_layer: 2, n_head: 2, n_positions: 64 },
  llama: { model_type: 'llama', architectures: ['LlamaForCausalLM'], vocab_size: 50, hidden_size: 16, intermediate_size: 32, num_hidden_layers: 2, num_attention_heads: 4, num_key_value_heads: 2, max_position_embeddings: 64 },
  bert: { model_type: 'bert', architectures: ['BertModel'], vocab_size: 50, hidden_size: 16, intermediate_size: 32, num_hidden_layers: 2, num_attention_heads: 2, max_position_embeddings: 64 },
  distilbert: { model_type: 'distilbert', architectures: ['DistilBertModel'], vocab_size: 50, dim: 16, hidden_dim: 32, n_layers: 2, n_heads: 2, max_position_embeddings: 64 },
};

/** A tiny model of `type`, eval mode. */
export function tinyModel(type: keyof typeof TINY_CONFIGS): PreTrainedModel {
  return createModel(TINY_CONFIGS[type]);
}

/** A second model with the same weights as `model` (built from the same config, state dict copied). */
export function cloneModel(model: PreTrainedModel): PreTrainedModel {
  const copy = createModel(model.config);
  copy.loadStateDict(model.stateDict(), false);
  return copy;
}

/** Token ids [batch, seq] in [0, vocab), deterministic in `seed`. */
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

/** The model's logits for `ids` (a new tensor). */
export function logitsOf(model: { forward: PreTrainedModel['forward'] }, ids: tf.Tensor2D): tf.Tensor {
  return tf.tidy(() => model.forward({ inputIds: ids }).logits);
}

/** A fresh temporary folder and a function that removes it. */
export function scratch(prefix = 'peftkit-adapter-'): { dir: string; cleanup: () => void } {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}
