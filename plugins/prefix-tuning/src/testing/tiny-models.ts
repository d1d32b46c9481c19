/**
 * Helpers for this package's tests: tiny GPT-2 and Llama models (the real architectures of
 * `@peftkit/models`, random weights, eval mode), the shared HF fixtures, scratch folders.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as tf from '@tensorflow/tfjs';
import { createModel, type KVCache, type ModelConfig, type PreTrainedModel } from '@peftkit/models';

/** The repo root: the nearest folder above this file whose package.json is `peftkit-workspace`. */
export function repoRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const pkg = join(dir, 'package.json');
    if (existsSync(pkg) && JSON.parse(readFileSync(pkg, 'utf8')).name === 'peftkit-workspace') return dir;
    const up = dirname(dir);
    if (up === dir) throw new Error('repo root (package.json "peftkit-workspace") not found');
    dir = up;
  }
}

/** `../shared/fixtures/hf/<set>` relative to the repo root. */
export function hfFixture(set: string): string {
  return resolve(repoRoot(), '..', 'shared', 'fixtures', 'hf', set);
}

/** GPT-2 with hidden 16, 2 heads (head_dim 8), 2 layers, vocab 50. */
export const GPT2: ModelConfig = { model_type: 'gpt2', architectures: ['GPT2LMHeadModel'], vocab_size: 50, n_embd: 16, n_layer: 2, n_head: 2, n_positions: 64, eos_token_id: 49 };
/** Llama with hidden 16, 4 heads sharing 2 key/value heads (head_dim 4), 2 layers, vocab 50. */
export const LLAMA_GQA: ModelConfig = { model_type: 'llama', architectures: ['LlamaForCausalLM'], vocab_size: 50, hidden_size: 16, intermediate_size: 32, num_hidden_layers: 2, num_attention_heads: 4, num_key_value_heads: 2, max_position_embeddings: 64, eos_token_id: 49 };

/** A model for `config`, eval mode. */
export function tiny(config: ModelConfig): PreTrainedModel {
  return createModel(config);
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

/** The logits of `model` for `ids` (a new tensor). */
export function logitsOf(model: { forward: PreTrainedModel['forward'] }, ids: tf.Tensor2D): tf.Tensor {
  return tf.tidy(() => model.forward({ inputIds: ids }).logits);
}

/** The keys and values the base model computes for `ids` [1, P] (its cache after reading them). */
export function cacheOf(model: PreTrainedModel, ids: tf.Tensor2D): KVCache {
  const out = model.forward({ inputIds: ids, useCache: true });
  out.logits.dispose();
  if (out.lastHiddenState && out.lastHiddenState !== out.logits) out.lastHiddenState.dispose();
  return out.pastKeyValues!;
}

/** A fresh temporary folder and a function that removes it. */
export function scratch(prefix = 'peftkit-prompt-'): { dir: string; cleanup: () => void } {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}
