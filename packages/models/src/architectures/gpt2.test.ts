import assert from 'node:assert/strict';
import { join } from 'node:path';
import { readFileSync } from 'node:fs';
import { before, test } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { initBackend } from '@peftkit/core';
import { GPT2ForSequenceClassification, GPT2LMHeadModel, GPT2Model, createModel, manualSeed, readSafetensors } from '../index.js';
import { hfFixture } from '../testing/index.js';

const tiny = { model_type: 'gpt2', vocab_size: 23, n_positions: 12, n_embd: 16, n_layer: 2, n_head: 2, resid_pdrop: 0.5, embd_pdrop: 0.5, attn_pdrop: 0.5 };
const ids = (rows: number[][]) => tf.tensor2d(rows, [rows.length, rows[0].length], 'int32');

function maxDiff(a: tf.Tensor, b: tf.Tensor): number {
  return tf.tidy(() => tf.max(tf.abs(tf.sub(a, b))).dataSync()[0]);
}

before(async () => {
  await initBackend('wasm');
});

test('parameter names are HF GPT2LMHeadModel state-dict names; lm_head is wte, listed once', () => {
  manualSeed(1);
  const m = new GPT2LMHeadModel(tiny);
  const layer = (i: number) =>
    ['ln_1.weight', 'ln_1.bias', 'attn.c_attn.weight', 'attn.c_attn.bias', 'attn.c_proj.weight', 'attn.c_proj.bias', 'ln_2.weight', 'ln_2.bias', 'mlp.c_fc.weight', 'mlp.c_fc.bias', 'mlp.c_proj.weight', 'mlp.c_proj.bias'].map((n) => `transformer.h.${i}.${n}`);
  assert.deepEqual(
    m.namedParameters().map(([n]) => n),
    ['transformer.wte.weight', 'transformer.wpe.weight', ...layer(0), ...layer(1), 'transformer.ln_f.weight', 'transformer.ln_f.bias'],
  );
  const sd = m.stateDict();
  assert.equal(sd.get('lm_head.weight'), sd.get('transformer.wte.weight'));
  assert.deepEqual(sd.get('transformer.h.0.attn.c_attn.weight')!.shape, [16, 48]); // Conv1D: [in, out]
  assert.deepEqual([...m.optionalStateKeys()], ['lm_head.weight']);
  assert.deepEqual(m.outputHeadNames(), ['lm_head']);
  assert.deepEqual(m.dims(), { numLayers: 2, hiddenSize: 16, numAttentionHeads: 2, numKeyValueHeads: 2, headDim: 8, vocabSize: 23 });
  for (const p of m.adapterPoints()) {
    assert.ok(m.getSubmodule(p.attentionOutput) && m.getSubmodule(p.feedForwardOutput), JSON.stringify(p));
  }
  assert.equal(m.adapterPoints()[1].feedForwardOutput, 'transformer.h.1.mlp.c_proj');
  m.dispose();
});

test('real checkpoints load strictly: GPT2Model keys without prefix, into both the bare model and the LM', () => {
  const dir = hfFixture('ckpt-gpt2-tiny-vocab');
  const config = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8'));
  const { tensors } = readSafetensors(join(dir, 'model.safetensors'));
  const bare = createModel(config);
  assert.ok(bare instanceof GPT2Model);
  bare.loadStateDict(tensors);
  const lm = createModel(config, 'causal-lm');
  // HF files of older versions also carry the causal-mask buffers; they are not parameters.
  const withBuffers = new Map(tensors);
  withBuffers.set('h.0.attn.bias', tf.ones([1, 1, 4, 4]));
  withBuffers.set('h.0.attn.masked_bias', tf.scalar(-1e4));
  assert.deepEqual(lm.loadStateDict(withBuffers), { missing: [], unexpected: [], mismatched: [] });
  const x = ids([[1, 2, 3, 4]]);
  const h = bare.forward({ inputIds: x }).logits;
  const logits = lm.forward({ inputIds: x }).logits;
  // The tied head: logits = h · wteᵀ.
  const expected = tf.matMul(h.reshape([4, 2]), tensors.get('wte.weight')!, false, true);
  assert.ok(maxDiff(logits.reshape([4, 21]), expected) < 1e-5);
});

test('the 50,257-token fake GPT-2 LM loads strictly and runs', () => {
  const dir = hfFixture('ckpt-gpt2-fake-nembd2');
  const config = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8'));
  const m = createModel(config);
  assert.ok(m instanceof GPT2LMHeadModel);
  const { tensors } = readSafetensors(join(dir, 'model.safetensors'));
  m.loadStateDict(tensors);
  const out = m.forward({ inputIds: ids([[50256, 464, 3290]]) });
  assert.deepEqual(out.logits.shape, [1, 3, 50257]);
  assert.ok(Number.isFinite(tf.sum(out.logits).dataSync()[0]));
  m.dispose();
});

test('incremental decoding with the cache equals one full forward pass', () => {
  manualSeed(2);
  const m = new GPT2LMHeadModel(tiny).eval();
  const seq = [[5, 9, 2, 7, 1, 3], [4, 4, 8, 0, 6, 2]];
  const full = m.forward({ inputIds: ids(seq) }).logits;
  const first = m.forward({ inputIds: ids(seq.map((r) => r.slice(0, 4))), useCache: true });
  assert.deepEqual(first.pastKeyValues![0].key.shape, [2, 2, 4, 8]);
  const second = m.forward({ inputIds: ids(seq.map((r) => r.slice(4, 5))), pastKeyValues: first.pastKeyValues, useCache: true });
  const third = m.forward({ inputIds: ids(seq.map((r) => r.slice(5))), pastKeyValues: second.pastKeyValues });
  const stepwise = tf.concat([first.logits, second.logits, third.logits], 1);
  assert.ok(maxDiff(full, stepwise) < 1e-5);
  assert.equal(third.pastKeyValues, undefined);
});

test('inputsEmbeds give the same result as the ids they embed', () => {
  manualSeed(3);
  const m = new GPT2Model(tiny).eval();
  const x = ids([[1, 2, 3]]);
  const a = m.forward({ inputIds: x }).logits;
  const b = m.forward({ inputsEmbeds: m.getInputEmbeddings().forward(x) as tf.Tensor3D }).logits;
  assert.ok(maxDiff(a, b) < 1e-6);
});

test('dropout is active in training mode only', () => {
  manualSeed(4);
  const m = new GPT2Model(tiny);
  const x = ids([[1, 2, 3, 4, 5]]);
  m.eval();
  const e1 = m.forward({ inputIds: x }).logits;
  const e2 = m.forward({ inputIds: x }).logits;
  assert.equal(maxDiff(e1, e2), 0);
  m.train();
  const t1 = m.forward({ inputIds: x }).logits;
  assert.ok(maxDiff(e1, t1) > 1e-3);
});

test('bad inputs give errors that say what is wrong', () => {
  manualSeed(5);
  const m = new GPT2LMHeadModel(tiny);
  const x = ids([[1, 2, 3]]);
  assert.throws(() => m.forward({}), /exactly one of inputIds and inputsEmbeds/);
  assert.throws(() => m.forward({ inputIds: x, inputsEmbeds: tf.zeros([1, 3, 16]) as tf.Tensor3D }), /exactly one/);
  assert.throws(() => m.forward({ inputIds: ids([[...Array(13).keys()]]) }), /exceed n_positions \(12\)/);
  assert.throws(() => m.forward({ inputIds: x, attentionMask: tf.ones([1, 5]) as tf.Tensor2D }), /attentionMask has 5 columns but past \+ current positions are 0 \+ 3 = 3/);
  const prefix = [{ key: tf.zeros([1, 2, 2, 8]) as tf.Tensor4D, value: tf.zeros([1, 2, 2, 8]) as tf.Tensor4D }];
  assert.throws(() => m.forward({ inputIds: x, pastKeyValues: prefix }), /pastKeyValues has 1 layers, the model has 2/);
  const badHeads = [0, 1].map(() => ({ key: tf.zeros([1, 3, 2, 8]) as tf.Tensor4D, value: tf.zeros([1, 3, 2, 8]) as tf.Tensor4D }));
  assert.throws(() => m.forward({ inputIds: x, pastKeyValues: badHeads }), /\[batch, 2 key\/value heads, past, 8 head_dim\]/);
  const cls = new GPT2ForSequenceClassification(tiny);
  assert.throws(() => cls.forward({ inputIds: ids([[1, 2], [3, 4]]) }), /pad_token_id/);
  assert.deepEqual(cls.forward({ inputIds: ids([[1, 2]]) }).logits.shape, [1, 2]);
});

test('a prefix given for one row is shared by the batch', () => {
  manualSeed(6);
  const m = new GPT2LMHeadModel(tiny).eval();
  const one = [0, 1].map(() => ({ key: tf.randomNormal([1, 2, 3, 8]) as tf.Tensor4D, value: tf.randomNormal([1, 2, 3, 8]) as tf.Tensor4D }));
  const two = one.map((l) => ({ key: tf.concat([l.key, l.key]) as tf.Tensor4D, value: tf.concat([l.value, l.value]) as tf.Tensor4D }));
  const x = ids([[1, 2], [3, 4]]);
  assert.ok(maxDiff(m.forward({ inputIds: x, pastKeyValues: one }).logits, m.forward({ inputIds: x, pastKeyValues: two }).logits) < 1e-6);
});
