import assert from 'node:assert/strict';
import { before, test } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { initBackend } from '@peftkit/core';
import { createModel, manualSeed, type PreTrainedModel } from '../index.js';

before(async () => {
  await initBackend('wasm');
});

/** Mean next-token cross-entropy (all positions counted). */
function loss(model: PreTrainedModel, ids: tf.Tensor2D): tf.Scalar {
  const logits = model.forward({ inputIds: ids, attentionMask: tf.onesLike(ids) as tf.Tensor2D }).logits as tf.Tensor3D;
  const [B, T, V] = logits.shape;
  const labels = tf.oneHot(tf.slice(ids, [0, 1], [B, T - 1]).cast('int32'), V);
  return tf.neg(tf.mean(tf.sum(tf.mul(tf.logSoftmax(tf.slice(logits, [0, 0, 0], [B, T - 1, V])), labels), -1))) as tf.Scalar;
}

/** Tensor counts after each of `steps` forward + backward passes over every parameter (full fine-tuning, dropout on). */
function countsOverSteps(model: PreTrainedModel, steps: number): number[] {
  model.train();
  const ids = tf.tensor2d([[1, 5, 2, 7, 3, 9], [4, 4, 0, 8, 6, 2]], [2, 6], 'int32');
  const vars = model.trainableParameters().map(([, v]) => v);
  const counts: number[] = [];
  for (let s = 0; s < steps; s++) {
    const { value, grads } = tf.variableGrads(() => loss(model, ids), vars);
    assert.equal(Object.keys(grads).length, vars.length);
    value.dispose();
    tf.dispose(grads);
    counts.push(tf.memory().numTensors);
  }
  ids.dispose();
  return counts;
}

for (const [name, config] of [
  ['GPT-2', { model_type: 'gpt2', vocab_size: 17, n_positions: 8, n_embd: 16, n_layer: 2, n_head: 2 }],
  ['Llama (GQA, tied)', { model_type: 'llama', vocab_size: 17, hidden_size: 16, intermediate_size: 24, num_hidden_layers: 2, num_attention_heads: 4, num_key_value_heads: 2, tie_word_embeddings: true }],
] as const) {
  test(`${name}: tensor count stays flat over repeated forward + backward passes`, () => {
    manualSeed(1);
    const before = tf.memory().numTensors;
    const model = createModel(config);
    const params = tf.memory().numTensors - before;
    const counts = countsOverSteps(model, 4);
    // Parameters and the batch of ids stay; nothing else survives a step.
    assert.deepEqual(counts, new Array(4).fill(before + params + 1), `counts ${counts}, parameters ${params}`);
    model.dispose();
    assert.equal(tf.memory().numTensors, before);
  });
}
