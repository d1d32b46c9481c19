import assert from 'node:assert/strict';
import { test } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { initBackend } from '@peftkit/core';
import '../../index.js'; // registers the kernels on backend ready
import { seededDropout } from '../dropout.js';
import { dropoutReference } from '../reference/philox.js';
import { philoxDropoutInto } from './philox-dropout.js';

const CASES: Array<[number, number, number]> = [[0.1, 0, 0], [0.5, 0xffffffff, 0xffffffff], [0.9, 0xa4093822, 0x299f31d0], [1 / 3, 12345, 678]];

test('the fast Philox loop gives the reference bits, including the tail of a length that is not a multiple of 4', () => {
  for (const n of [1, 2, 3, 5, 4099]) {
    const x = Float32Array.from({ length: n }, (_, i) => Math.sin(i + 0.5) * 3);
    for (const [rate, s0, s1] of CASES) {
      const y = new Float32Array(n);
      philoxDropoutInto(x, y, n, rate, s0, s1);
      assert.deepEqual(y, dropoutReference(x, rate, s0, s1), `n ${n} rate ${rate}`);
    }
  }
});

test('PeftkitDropout on the CPU backend: the reference values, and its gradient is the same mask times dy', async () => {
  await initBackend('cpu');
  assert.ok(tf.getKernel('PeftkitDropout', 'cpu'));
  const shape = [3, 7, 11];
  const xv = Float32Array.from({ length: 231 }, (_, i) => Math.cos(i) + 0.25);
  const x = tf.tensor(xv, shape);
  for (const [rate, s0, s1] of CASES) {
    const y = seededDropout(x, rate, s0, s1);
    assert.deepEqual(y.shape, shape);
    assert.deepEqual(y.dataSync(), dropoutReference(xv, rate, s0, s1));
    // d/dx sum(dropout(x) · w) = dropout(w): the mask recomputed from the same key.
    const wv = Float32Array.from({ length: 231 }, (_, i) => 1 + (i % 5));
    const g = tf.grad((t: tf.Tensor) => tf.sum(tf.mul(seededDropout(t, rate, s0, s1), tf.tensor(wv, shape))))(x);
    assert.deepEqual(g.dataSync(), dropoutReference(wv, rate, s0, s1));
  }
  assert.equal(seededDropout(x, 0, 1, 2), x);
  assert.throws(() => seededDropout(x, 1, 1, 2), /rate must be in \[0, 1\)/);
});
