import assert from 'node:assert/strict';
import { before, test } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { initBackend, UserError } from '@peftkit/core';
import { LlamaForCausalLM, LlamaForSequenceClassification, LlamaModel, createModel, llamaConfig, manualSeed, ropeInverseFrequencies, TiedLinear } from '../index.js';

const smol = { model_type: 'llama', vocab_size: 29, hidden_size: 16, intermediate_size: 24, num_hidden_layers: 2, num_attention_heads: 4, num_key_value_heads: 2, tie_word_embeddings: true, pad_token_id: 0 };
const ids = (rows: number[][]) => tf.tensor2d(rows, [rows.length, rows[0].length], 'int32');
const maxDiff = (a: tf.Tensor, b: tf.Tensor) => tf.tidy(() => tf.max(tf.abs(tf.sub(a, b))).dataSync()[0]);

before(async () => {
  await initBackend('wasm');
});

test('HF names and GQA shapes (SmolLM-style: tied head, 2 key/value heads)', () => {
  manualSeed(1);
  const m = new LlamaForCausalLM(smol);
  const names = m.namedParameters().map(([n]) => n);
  assert.deepEqual(names.slice(0, 10), [
    'model.embed_tokens.weight',
    'model.layers.0.self_attn.q_proj.weight',
    'model.layers.0.self_attn.k_proj.weight',
    'model.layers.0.self_attn.v_proj.weight',
    'model.layers.0.self_attn.o_proj.weight',
    'model.layers.0.mlp.gate_proj.weight',
    'model.layers.0.mlp.up_proj.weight',
    'model.layers.0.mlp.down_proj.weight',
    'model.layers.0.input_layernorm.weight',
    'model.layers.0.post_attention_layernorm.weight',
  ]);
  assert.equal(names.at(-1), 'model.norm.weight');
  assert.ok(!names.includes('lm_head.weight'), 'tied head is not a parameter of its own');
  assert.ok(m.lm_head instanceof TiedLinear);
  assert.deepEqual([...m.optionalStateKeys()], ['lm_head.weight']);
  const sd = m.stateDict();
  assert.deepEqual(sd.get('model.layers.0.self_attn.k_proj.weight')!.shape, [8, 16]); // 2 kv heads × head_dim 4
  assert.deepEqual(m.dims(), { numLayers: 2, hiddenSize: 16, numAttentionHeads: 4, numKeyValueHeads: 2, headDim: 4, vocabSize: 29 });
  assert.equal(m.adapterPoints()[0].attentionOutput, 'model.layers.0.self_attn.o_proj');
  for (const p of m.adapterPoints()) assert.ok(m.getSubmodule(p.feedForwardOutput));

  const untied = new LlamaForCausalLM({ ...smol, tie_word_embeddings: false });
  assert.ok(untied.namedParameters().some(([n]) => n === 'lm_head.weight'));
  assert.equal(untied.optionalStateKeys().size, 0);
  m.dispose();
  untied.dispose();
});

test('Qwen2 has q/k/v biases and no o_proj bias; Llama has biases only with attention_bias', () => {
  manualSeed(2);
  const names = (cfg: object) => new LlamaModel(cfg as any).namedParameters().map(([n]) => n).filter((n) => n.startsWith('layers.0.self_attn'));
  assert.deepEqual(names({ ...smol, model_type: 'qwen2' }).filter((n) => n.endsWith('bias')), ['layers.0.self_attn.q_proj.bias', 'layers.0.self_attn.k_proj.bias', 'layers.0.self_attn.v_proj.bias']);
  assert.equal(names(smol).filter((n) => n.endsWith('bias')).length, 0);
  assert.equal(names({ ...smol, attention_bias: true }).filter((n) => n.endsWith('bias')).length, 4);
});

test('incremental decoding with the cache equals one full pass (GQA, RoPE offsets, Mistral window)', () => {
  for (const cfg of [smol, { ...smol, model_type: 'mistral', sliding_window: 2 }]) {
    manualSeed(3);
    const m = new LlamaForCausalLM(cfg);
    m.eval();
    const seq = [[5, 9, 2, 7, 1], [4, 4, 8, 1, 6]];
    const full = m.forward({ inputIds: ids(seq) }).logits;
    const a = m.forward({ inputIds: ids(seq.map((r) => r.slice(0, 3))), useCache: true });
    assert.deepEqual(a.pastKeyValues![1].value.shape, [2, 2, 3, 4]); // kv heads, not query heads
    const b = m.forward({ inputIds: ids(seq.map((r) => r.slice(3))), pastKeyValues: a.pastKeyValues });
    assert.ok(maxDiff(full, tf.concat([a.logits, b.logits], 1)) < 1e-5, cfg.model_type);
  }
});

test('the sliding window changes what a position sees (Mistral)', () => {
  manualSeed(4);
  const m = new LlamaModel({ ...smol, model_type: 'mistral', sliding_window: 2 }).eval();
  manualSeed(4);
  const wide = new LlamaModel({ ...smol, model_type: 'mistral', sliding_window: 100 }).eval();
  const x = ids([[3, 1, 4, 1, 5]]);
  const a = m.forward({ inputIds: x }).logits;
  const b = wide.forward({ inputIds: x }).logits;
  // Positions 0 and 1 see at most 2 keys either way; later ones differ.
  assert.ok(maxDiff(tf.slice(a, [0, 0, 0], [1, 2, 16]), tf.slice(b, [0, 0, 0], [1, 2, 16])) < 1e-6);
  assert.ok(maxDiff(tf.slice(a, [0, 2, 0], [1, 3, 16]), tf.slice(b, [0, 2, 0], [1, 3, 16])) > 1e-3);
});

test('RoPE frequencies: default θ^(-2i/d), linear and llama3 scaling', () => {
  const base = llamaConfig({ ...smol, hidden_size: 32, num_attention_heads: 4 }); // head_dim 8
  assert.deepEqual([...ropeInverseFrequencies(base)].map((f) => +f.toPrecision(6)), [1, 0.1, 0.01, 0.001]);
  const lin = llamaConfig({ ...smol, hidden_size: 32, num_attention_heads: 4, rope_scaling: { rope_type: 'linear', factor: 4 } });
  assert.deepEqual([...ropeInverseFrequencies(lin)].map((f) => +f.toPrecision(6)), [0.25, 0.025, 0.0025, 0.00025]);
  // llama3 with original context 16, low 1, high 4: wavelengths 6.28 (between 4 and 16: smoothed), 62.8, 628, 6283 (divided by 8).
  const l3 = llamaConfig({ ...smol, hidden_size: 32, num_attention_heads: 4, rope_scaling: { rope_type: 'llama3', factor: 8, low_freq_factor: 1, high_freq_factor: 4, original_max_position_embeddings: 16 } });
  const smooth = (16 / (2 * Math.PI) - 1) / 3;
  const expected = [(1 - smooth) / 8 + smooth, 0.1 / 8, 0.01 / 8, 0.001 / 8];
  ropeInverseFrequencies(l3).forEach((f, i) => assert.ok(Math.abs(f - expected[i]) < 1e-6 * expected[i] + 1e-9, `${i}: ${f} vs ${expected[i]}`));
  assert.throws(() => llamaConfig({ ...smol, rope_scaling: { rope_type: 'mrope', factor: 2 } }), (e: Error) => e instanceof UserError && /\/rope_scaling\/rope_type is "mrope", which peftkit does not support; supported rope types: default, linear, dynamic, yarn, longrope, llama3/.test(e.message));
});

test('config checks: GQA divisibility, head_dim override, family defaults', () => {
  assert.throws(() => llamaConfig({ ...smol, num_key_value_heads: 3 }), /num_attention_heads \(4\) must be a multiple of \/num_key_value_heads \(3\)/);
  assert.equal(llamaConfig({ ...smol, head_dim: 6 }).head_dim, 6);
  assert.equal(llamaConfig({ model_type: 'mistral' }).num_key_value_heads, 8);
  assert.equal(llamaConfig({ model_type: 'qwen2' }).vocab_size, 151936);
  assert.equal(llamaConfig({ model_type: 'llama' }).num_key_value_heads, 32);
});

test('sequence classification reads the last non-padding token', () => {
  manualSeed(5);
  const m = createModel({ ...smol, architectures: ['LlamaForSequenceClassification'], id2label: { 0: 'a', 1: 'b', 2: 'c' } });
  assert.ok(m instanceof LlamaForSequenceClassification);
  assert.deepEqual(m.outputHeadNames(), ['score']);
  const padded = m.forward({ inputIds: ids([[7, 8, 9, 0, 0]]), attentionMask: ids([[1, 1, 1, 0, 0]]) }).logits;
  const plain = m.forward({ inputIds: ids([[7, 8, 9]]) }).logits;
  assert.deepEqual(plain.shape, [1, 3]);
  assert.ok(maxDiff(padded, plain) < 1e-5);
});
