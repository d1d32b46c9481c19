import assert from 'node:assert/strict';
import { test } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { initBackend } from '@peftkit/core';
import { clipGradNorm } from './clip.js';

await initBackend('wasm');

test('global-norm clipping scales every gradient by max_norm / (total + 1e-6) and returns the total', async () => {
  const grads = new Map<string, tf.Tensor>([['a', tf.tensor1d([3, 4])], ['b', tf.tensor1d([12])]]);
  const total = await clipGradNorm(grads, 1);
  assert.ok(Math.abs(total - 13) < 1e-5);
  const c = 1 / (13 + 1e-6);
  const a = grads.get('a')!.dataSync();
  assert.ok(Math.abs(a[0] - 3 * c) < 1e-7 && Math.abs(a[1] - 4 * c) < 1e-7);
  assert.ok(Math.abs(grads.get('b')!.dataSync()[0] - 12 * c) < 1e-7);
  // The clipped set has norm ~1.
  const n = Math.hypot(...a, grads.get('b')!.dataSync()[0]);
  assert.ok(Math.abs(n - 1) < 1e-5);
});

test('below max_norm, or with clipping off, gradients are untouched', async () => {
  const g = tf.tensor1d([0.3, 0.4]);
  const grads = new Map<string, tf.Tensor>([['a', g]]);
  assert.ok(Math.abs((await clipGradNorm(grads, 1)) - 0.5) < 1e-6);
  assert.equal(grads.get('a'), g);
  const big = new Map<string, tf.Tensor>([['a', tf.tensor1d([30, 40])]]);
  assert.ok(Math.abs((await clipGradNorm(big, 0)) - 50) < 1e-4);
  assert.deepEqual(Array.from(big.get('a')!.dataSync()), [30, 40]);
});
