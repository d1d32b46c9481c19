import assert from 'node:assert/strict';
import { before, test } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { initBackend, UserError } from '@peftkit/core';
import { createModel, inferTask, SUPPORTED_MODEL_TYPES } from '../index.js';

const sizes = { vocab_size: 13, n_embd: 8, n_layer: 1, n_head: 2, hidden_size: 8, num_hidden_layers: 1, num_attention_heads: 2, num_key_value_heads: 2, intermediate_size: 8, dim: 8, n_layers: 1, n_heads: 2, hidden_dim: 8 };

before(async () => {
  await initBackend('wasm');
});

test('architectures[0] chooses the class and task', () => {
  const cases: [string, string, string][] = [
    ['gpt2', 'GPT2LMHeadModel', 'GPT2LMHeadModel'],
    ['gpt2', 'GPT2ForSequenceClassification', 'GPT2ForSequenceClassification'],
    ['gpt2', 'GPT2Model', 'GPT2Model'],
    ['llama', 'LlamaForCausalLM', 'LlamaForCausalLM'],
    ['qwen2', 'Qwen2ForSequenceClassification', 'LlamaForSequenceClassification'],
    ['mistral', 'MistralForCausalLM', 'LlamaForCausalLM'],
    ['bert', 'BertForSequenceClassification', 'BertForSequenceClassification'],
    ['bert', 'BertForMaskedLM', 'BertModel'],
    ['distilbert', 'DistilBertForSequenceClassification', 'DistilBertForSequenceClassification'],
    ['distilbert', 'DistilBertModel', 'DistilBertModel'],
  ];
  for (const [type, arch, cls] of cases) {
    const m = createModel({ model_type: type, architectures: [arch], ...sizes });
    assert.equal(m.constructor.name, cls, arch);
    assert.equal(m.training, false, 'created in eval mode, as from_pretrained');
    m.dispose();
  }
  assert.equal(inferTask({ model_type: 'llama' }), 'causal-lm');
  assert.equal(inferTask({ model_type: 'bert' }), 'base');
  assert.equal(createModel({ model_type: 'gpt2', architectures: ['GPT2LMHeadModel'], ...sizes }, 'sequence-classification').task, 'sequence-classification');
});

test('unsupported model types and tasks are user errors that list what is supported', () => {
  assert.deepEqual([...SUPPORTED_MODEL_TYPES].sort(), ['bert', 'distilbert', 'gpt2', 'llama', 'mistral', 'qwen2']);
  assert.throws(
    () => createModel({ model_type: 't5' }, undefined, '/m/config.json'),
    (e: Error) => e instanceof UserError && /\/m\/config\.json: \/model_type "t5" is not supported; supported model types: gpt2, llama, qwen2, mistral, bert, distilbert/.test(e.message),
  );
  assert.throws(() => createModel({ model_type: 'bert', ...sizes }, 'causal-lm'), /has no causal-lm model; available tasks: sequence-classification, base/);
  assert.throws(
    () => createModel({ model_type: 'gpt2', n_embd: 'wide' } as any, undefined, 'x/config.json'),
    (e: Error) => e instanceof UserError && /x\/config\.json: \/n_embd: must be of type integer/.test(e.message),
  );
});

test('sequence classification pools the last non-pad token, also for one-token inputs', () => {
  const m = createModel({ model_type: 'gpt2', architectures: ['GPT2ForSequenceClassification'], n_embd: 8, n_layer: 1, n_head: 2, n_positions: 8, vocab_size: 10, num_labels: 3, pad_token_id: 0 });
  const one = m.forward({ inputIds: tf.tensor2d([[5]], [1, 1], 'int32') }).logits;
  assert.deepEqual(one.shape, [1, 3]);
  // A padded row scores as its unpadded self: the head reads position 1, not the pad after it.
  const padded = m.forward({ inputIds: tf.tensor2d([[5, 6, 0]], [1, 3], 'int32'), attentionMask: tf.tensor2d([[1, 1, 0]], [1, 3], 'int32') }).logits.dataSync();
  const plain = m.forward({ inputIds: tf.tensor2d([[5, 6]], [1, 2], 'int32') }).logits.dataSync();
  for (let i = 0; i < 3; i++) assert.ok(Math.abs(padded[i] - plain[i]) < 1e-5, `${padded[i]} vs ${plain[i]}`);
  m.dispose();
});
