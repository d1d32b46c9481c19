/**
 * Helpers for this package's tests: tiny GPT-2 and Llama models (the real architectures of
 * `@peftkit/models`, random weights), the shared HF fixtures, scratch folders.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as tf from '@tensorflow/tfjs';
import { createModel, type GPT2LMHeadModel, type LlamaForCausalLM, type LlamaForSequenceClassification } from '@peftkit/models';

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

/** A fresh temporary folder and a function that removes it. */
export function scratch(prefix = 'peftkit-lora-'): { dir: string; cleanup: () => void } {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

/** GPT-2 (`GPT2LMHeadModel`): n_embd 8, 2 heads, Conv1D `transformer.h.{i}.attn.c_attn` [8, 24], tied `lm_head`. Eval mode. */
export function tinyGpt2(nLayers = 2): GPT2LMHeadModel {
  return createModel({ model_type: 'gpt2', n_embd: 8, n_layer: nLayers, n_head: 2, vocab_size: 11, n_positions: 16 }, 'causal-lm') as GPT2LMHeadModel;
}

/** Llama (`LlamaForCausalLM`): hidden 8, 2 heads, 1 key/value head (k/v_proj out 4), intermediate 12, untied `lm_head`. Eval mode. */
export function tinyLlama(nLayers = 2): LlamaForCausalLM {
  return createModel(llamaConfig(nLayers), 'causal-lm') as LlamaForCausalLM;
}

/** Llama sequence classifier (`LlamaForSequenceClassification`): the model above and `score` [3, 8]. Eval mode. */
export function tinyLlamaForSequenceClassification(): LlamaForSequenceClassification {
  return createModel({ ...llamaConfig(2), num_labels: 3, pad_token_id: 0 }, 'sequence-classification') as LlamaForSequenceClassification;
}

function llamaConfig(nLayers: number) {
  return { model_type: 'llama', hidden_size: 8, intermediate_size: 12, num_hidden_layers: nLayers, num_attention_heads: 2, num_key_value_heads: 1, vocab_size: 11, max_position_embeddings: 16 };
}

/** Token ids [batch, seq] drawn deterministically from `seed`. */
export function sampleIds(batch: number, seq: number, vocab: number, seed = 1): tf.Tensor2D {
  const ids = new Int32Array(batch * seq);
  let s = seed >>> 0;
  for (let i = 0; i < ids.length; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    ids[i] = s % vocab;
  }
  return tf.tensor2d(ids, [batch, seq], 'int32');
}

/** Largest absolute elementwise difference. */
export function maxAbsDiff(a: tf.Tensor, b: tf.Tensor): number {
  return tf.tidy(() => tf.max(tf.abs(tf.sub(a, b))).dataSync()[0]);
}
