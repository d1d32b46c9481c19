/** Helpers for this package's tests: tiny real models (random weights), scratch folders, float32 bit tricks. */
import { createModel, type GPT2LMHeadModel, type LlamaForCausalLM, manualSeed } from '@peftkit/models';

/** GPT-2 (`GPT2LMHeadModel`): n_embd 16, 2 heads, Conv1D layers, tied `lm_head`. Eval mode, seeded. */
export function tinyGpt2(nLayers = 1, seed = 7): GPT2LMHeadModel {
  manualSeed(seed);
  const m = createModel({ model_type: 'gpt2', n_embd: 16, n_layer: nLayers, n_head: 2, vocab_size: 23, n_positions: 16 }, 'causal-lm') as GPT2LMHeadModel;
  m.eval();
  return m;
}

/** Llama (`LlamaForCausalLM`): hidden 16, 2 heads, 1 key/value head, intermediate 24, untied `lm_head`. Eval mode, seeded. */
export function tinyLlama(nLayers = 1, seed = 7): LlamaForCausalLM {
  manualSeed(seed);
  const m = createModel(
    { model_type: 'llama', hidden_size: 16, intermediate_size: 24, num_hidden_layers: nLayers, num_attention_heads: 2, num_key_value_heads: 1, vocab_size: 19, max_position_embeddings: 32, tie_word_embeddings: false },
    'causal-lm',
  ) as LlamaForCausalLM;
  m.eval();
  return m;
}

export { scratch } from '@peftkit/models/testing';

/** The next float32 above `x` (a float32), by incrementing its bit pattern (independent of the code under test). */
export function nextUpF32(x: number): number {
  const f = new Float32Array([x]);
  const u = new Uint32Array(f.buffer);
  if (x === 0) u[0] = 1;
  else if (x > 0) u[0] += 1;
  else u[0] -= 1;
  return f[0];
}

/** Standard normal draws from a seeded LCG + Box-Muller (deterministic, no tfjs). */
export function normals(n: number, seed = 1, scale = 1): Float32Array {
  let s = seed >>> 0;
  const u = () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return (s + 1) / 4294967297;
  };
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = scale * Math.sqrt(-2 * Math.log(u())) * Math.cos(2 * Math.PI * u());
  return out;
}
