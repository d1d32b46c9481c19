import assert from 'node:assert/strict';
import { before, test } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { initBackend } from '@peftkit/core';
import { causalLmNllSum, countCausalTargets } from './losses.js';

before(async () => {
  await initBackend('wasm');
});

test('prompt tuning: leadingLogits score the first label, as HF PEFT pads the labels with -100 for the virtual tokens only', () => {
  const B = 2;
  const T = 4;
  const V = 5;
  const P = 3; // virtual tokens
  const labels = [[2, 4, -100, 1], [-100, 3, 3, 0]];
  const full = tf.randomNormal([B, P + T, V], 0, 2, 'float32', 11) as tf.Tensor3D; // the model's logits with the virtual positions
  // HF: labels [-100 × P, labels], shift by one over all P + T positions.
  const padded = labels.map((row) => [...Array(P).fill(-100), ...row]);
  const hf = tf.tidy(() => causalLmNllSum(full, tf.tensor2d(padded, undefined, 'int32')).dataSync()[0]) / countCausalTargets(Int32Array.from(padded.flat()), B, P + T);
  // peftkit: the stripped logits plus the last virtual position's logits.
  const ours = tf.tidy(() => {
    const logits = tf.slice(full, [0, P, 0], [-1, T, -1]);
    const leading = tf.squeeze(tf.slice(full, [0, P - 1, 0], [-1, 1, -1]), [1]);
    return causalLmNllSum(logits, tf.tensor2d(labels, undefined, 'int32'), leading).dataSync()[0];
  });
  const n = countCausalTargets(Int32Array.from(labels.flat()), B, T, true);
  assert.equal(n, 6); // row 0: 2, 4, 1 (position 0 counts); row 1: 3, 3, 0
  assert.equal(countCausalTargets(Int32Array.from(labels.flat()), B, T), 5);
  assert.ok(Math.abs(ours / n - hf) < 1e-6, `${ours / n} vs ${hf}`);
  full.dispose();
});
