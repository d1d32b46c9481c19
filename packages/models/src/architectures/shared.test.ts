import assert from 'node:assert/strict';
import { test } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { initBackend } from '@peftkit/core';
import { activation } from './shared.js';

test('gelu_new (computed as x·σ(2u)) equals HF\'s 0.5·x·(1 + tanh(u)) in float64, with its derivative', async () => {
  await initBackend('wasm');
  const xs = Array.from({ length: 401 }, (_, i) => -10 + i * 0.05);
  const u = (x: number) => Math.sqrt(2 / Math.PI) * (x + 0.044715 * x ** 3);
  const ref = (x: number) => 0.5 * x * (1 + Math.tanh(u(x)));
  const dref = (x: number) => 0.5 * (1 + Math.tanh(u(x))) + 0.5 * x * (1 - Math.tanh(u(x)) ** 2) * Math.sqrt(2 / Math.PI) * (1 + 3 * 0.044715 * x * x);
  for (const name of ['gelu_new', 'gelu_pytorch_tanh', 'gelu_fast']) {
    const f = activation(name);
    const x = tf.tensor1d(xs);
    const y = f(x).dataSync();
    const g = tf.grad(f)(x).dataSync();
    xs.forEach((v, i) => {
      assert.ok(Math.abs(y[i] - ref(v)) <= 1e-6 * (1 + Math.abs(ref(v))), `${name}(${v}) = ${y[i]}, not ${ref(v)}`);
      assert.ok(Math.abs(g[i] - dref(v)) <= 1e-5, `${name}'(${v}) = ${g[i]}, not ${dref(v)}`);
    });
    x.dispose();
  }
});
