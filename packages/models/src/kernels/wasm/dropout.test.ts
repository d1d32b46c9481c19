import assert from 'node:assert/strict';
import { test } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { initBackend } from '@peftkit/core';
import { Dropout, manualSeed } from '../../index.js'; // registers the kernels on backend ready
import { seededDropout } from '../dropout.js';
import { dropoutReference } from '../reference/philox.js';
import { backendMemory } from './wasm-module.js';
import { DROPOUT_GROUPS } from './dropout-wat.js';

test('PeftkitDropout on WASM: the reference values over the heap, and the gradient is the same mask times dy', async () => {
  await initBackend('wasm');
  assert.ok(tf.getKernel('PeftkitDropout', 'wasm'));
  const shape = [2, 3, 129];
  const n = 2 * 3 * 129;
  const xv = Float32Array.from({ length: n }, (_, i) => Math.sin(i * 0.3) * 2);
  const wv = Float32Array.from({ length: n }, (_, i) => 0.5 + (i % 3));
  const x = tf.tensor(xv, shape);
  for (const [rate, s0, s1] of [[0.1, 7, 8], [0.5, 0xffffffff, 0], [0.25, 0x243f6a88, 0x85a308d3]] as const) {
    assert.deepEqual(seededDropout(x, rate, s0, s1).dataSync(), dropoutReference(xv, rate, s0, s1));
    const g = tf.grad((t: tf.Tensor) => tf.sum(tf.mul(seededDropout(t, rate, s0, s1), tf.tensor(wv, shape))))(x);
    assert.deepEqual(g.dataSync(), dropoutReference(wv, rate, s0, s1));
  }
});

test('PeftkitDropout on WASM runs the SIMD loop: the reference values over 300,007 elements (block counters past 2^16), and through all its loops', async () => {
  await initBackend('wasm');
  assert.ok(backendMemory(tf.backend()), 'the backend\'s memory is found, so the SIMD module (not the JavaScript loop) runs');
  // 300,007: interleaved groups, then a partial one; the other: interleaved groups, one whole group alone, a partial one.
  for (const n of [300_007, 16 * DROPOUT_GROUPS * 3 + 16 + 5]) {
    const xv = Float32Array.from({ length: n }, (_, i) => Math.cos(i * 0.011) - 0.25);
    const x = tf.tensor(xv);
    assert.deepEqual(seededDropout(x, 0.3, 0xdeadbeef, 0x01234567).dataSync(), dropoutReference(xv, 0.3, 0xdeadbeef, 0x01234567), `${n} elements`);
    x.dispose();
  }
});

test('the Dropout layer: the same seed gives the same masks, the next call another, eval mode none; no randomUniform kernel runs', async () => {
  await initBackend('wasm');
  const layer = new Dropout(0.5);
  layer.train();
  const x = tf.ones([4, 64]);
  manualSeed(3);
  const a1 = layer.forward(x).dataSync();
  const a2 = layer.forward(x).dataSync();
  manualSeed(3);
  assert.deepEqual(layer.forward(x).dataSync(), a1);
  assert.notDeepEqual(Array.from(a2), Array.from(a1));
  // Kept elements are 1 / (1 - 0.5) = 2; about half are kept (Binomial(256, 0.5): sd 8).
  const kept = Array.from(a1).filter((v) => v !== 0);
  assert.ok(kept.every((v) => v === 2));
  assert.ok(Math.abs(kept.length - 128) < 40, `kept ${kept.length}`);
  const profile = await tf.profile(() => layer.forward(x));
  assert.deepEqual(profile.kernelNames, ['PeftkitDropout']);
  layer.eval();
  assert.deepEqual(layer.forward(x).dataSync(), x.dataSync());
});
