import assert from 'node:assert/strict';
import { before, test } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { initBackend } from '@peftkit/core';
import { BertForSequenceClassification, BertModel, DistilBertForSequenceClassification, DistilBertModel, manualSeed } from '../index.js';

const bert = { model_type: 'bert', vocab_size: 31, hidden_size: 16, num_hidden_layers: 2, num_attention_heads: 2, intermediate_size: 20, max_position_embeddings: 10 };
const distil = { model_type: 'distilbert', vocab_size: 31, dim: 16, n_layers: 2, n_heads: 2, hidden_dim: 20, max_position_embeddings: 10 };
const ids = (rows: number[][]) => tf.tensor2d(rows, [rows.length, rows[0].length], 'int32');
const maxDiff = (a: tf.Tensor, b: tf.Tensor) => tf.tidy(() => tf.max(tf.abs(tf.sub(a, b))).dataSync()[0]);

before(async () => {
  await initBackend('wasm');
});

test('BERT: HF names, heads and adapter points', () => {
  manualSeed(1);
  const m = new BertForSequenceClassification(bert);
  const names = m.namedParameters().map(([n]) => n);
  assert.deepEqual(names.slice(0, 5), ['bert.embeddings.word_embeddings.weight', 'bert.embeddings.position_embeddings.weight', 'bert.embeddings.token_type_embeddings.weight', 'bert.embeddings.LayerNorm.weight', 'bert.embeddings.LayerNorm.bias']);
  for (const n of ['bert.encoder.layer.1.attention.self.query.weight', 'bert.encoder.layer.1.attention.output.dense.bias', 'bert.encoder.layer.1.attention.output.LayerNorm.weight', 'bert.encoder.layer.1.intermediate.dense.weight', 'bert.encoder.layer.1.output.dense.weight', 'bert.encoder.layer.1.output.LayerNorm.bias', 'bert.pooler.dense.weight']) {
    assert.ok(names.includes(n), n);
  }
  assert.deepEqual(names.slice(-2), ['classifier.weight', 'classifier.bias']);
  assert.deepEqual(m.adapterPoints()[1], { layer: 1, attentionOutput: 'bert.encoder.layer.1.attention.output.dense', feedForwardOutput: 'bert.encoder.layer.1.output.dense' });
  for (const p of m.adapterPoints()) assert.ok(m.getSubmodule(p.attentionOutput) && m.getSubmodule(p.feedForwardOutput));
  assert.deepEqual(m.outputHeadNames(), ['classifier']);
});

test('BERT: token types default to zeros; padding keys are ignored; a checkpoint with `bert.` strips into BertModel', () => {
  manualSeed(2);
  const m = new BertForSequenceClassification(bert).eval();
  const x = ids([[2, 3, 4, 5]]);
  const a = m.forward({ inputIds: x }).logits;
  const b = m.forward({ inputIds: x, tokenTypeIds: tf.zerosLike(x) as tf.Tensor2D }).logits;
  assert.equal(maxDiff(a, b), 0);
  const c = m.forward({ inputIds: x, tokenTypeIds: ids([[0, 0, 1, 1]]) }).logits;
  assert.ok(maxDiff(a, c) > 1e-4);
  const padded = m.forward({ inputIds: ids([[2, 3, 4, 5, 9, 9]]), attentionMask: ids([[1, 1, 1, 1, 0, 0]]) }).logits;
  assert.ok(maxDiff(a, padded) < 1e-5);

  const base = new BertModel(bert).eval();
  const sd = new Map([...m.stateDict()].filter(([k]) => k.startsWith('bert.')));
  sd.set('bert.embeddings.position_ids', tf.range(0, 10).reshape([1, 10]));
  sd.set('cls.predictions.bias', tf.zeros([31]));
  assert.deepEqual(base.loadStateDict(sd), { missing: [], unexpected: [], mismatched: [] });
  assert.ok(maxDiff(base.forward({ inputIds: x }).logits, m.bert.forward({ inputIds: x }).logits) < 1e-6);
});

test('BERT takes prefix keys/values (prefix tuning): a masked-out prefix changes nothing, a visible one does', () => {
  manualSeed(3);
  const m = new BertModel(bert).eval();
  const x = ids([[2, 3, 4]]);
  const prefix = [0, 1].map(() => ({ key: tf.randomNormal([1, 2, 2, 8]) as tf.Tensor4D, value: tf.randomNormal([1, 2, 2, 8]) as tf.Tensor4D }));
  const masked = m.forward({ inputIds: x, pastKeyValues: prefix, attentionMask: ids([[0, 0, 1, 1, 1]]), positionIds: ids([[0, 1, 2]]) }).logits;
  const plain = m.forward({ inputIds: x }).logits;
  assert.ok(maxDiff(masked, plain) < 1e-5);
  const seen = m.forward({ inputIds: x, pastKeyValues: prefix, attentionMask: ids([[1, 1, 1, 1, 1]]) }).logits;
  assert.ok(maxDiff(seen, plain) > 1e-3);
});

test('DistilBERT: HF names, heads, padding, and no pastKeyValues', () => {
  manualSeed(4);
  const m = new DistilBertForSequenceClassification({ ...distil, id2label: { 0: 'a', 1: 'b', 2: 'c', 3: 'd', 4: 'e', 5: 'f' } }).eval();
  const names = m.namedParameters().map(([n]) => n);
  for (const n of ['distilbert.embeddings.word_embeddings.weight', 'distilbert.embeddings.LayerNorm.bias', 'distilbert.transformer.layer.0.attention.q_lin.weight', 'distilbert.transformer.layer.0.attention.out_lin.bias', 'distilbert.transformer.layer.0.sa_layer_norm.weight', 'distilbert.transformer.layer.0.ffn.lin1.weight', 'distilbert.transformer.layer.0.ffn.lin2.bias', 'distilbert.transformer.layer.0.output_layer_norm.weight', 'pre_classifier.weight', 'classifier.bias']) {
    assert.ok(names.includes(n), n);
  }
  assert.deepEqual(m.stateDict().get('classifier.weight')!.shape, [6, 16]);
  assert.deepEqual(m.outputHeadNames(), ['pre_classifier', 'classifier']);
  assert.equal(m.adapterPoints()[0].feedForwardOutput, 'distilbert.transformer.layer.0.ffn.lin2');
  const a = m.forward({ inputIds: ids([[2, 3, 4]]) }).logits;
  const b = m.forward({ inputIds: ids([[2, 3, 4, 0]]), attentionMask: ids([[1, 1, 1, 0]]) }).logits;
  assert.ok(maxDiff(a, b) < 1e-5);
  const prefix = [0, 1].map(() => ({ key: tf.zeros([1, 2, 1, 8]) as tf.Tensor4D, value: tf.zeros([1, 2, 1, 8]) as tf.Tensor4D }));
  assert.throws(() => m.forward({ inputIds: ids([[2]]), pastKeyValues: prefix }), /DistilBERT takes no pastKeyValues/);
});

test('DistilBERT sinusoidal position embeddings are HF\'s table and frozen', () => {
  const m = new DistilBertModel({ ...distil, sinusoidal_pos_embds: true });
  const w = m.embeddings.position_embeddings.weight;
  assert.equal(w.trainable, false);
  const t = w.arraySync() as number[][];
  assert.ok(Math.abs(t[3][0] - Math.sin(3)) < 1e-6 && Math.abs(t[3][1] - Math.cos(3)) < 1e-6);
  assert.ok(Math.abs(t[5][2] - Math.sin(5 / Math.pow(10000, 2 / 16))) < 1e-6);
});
