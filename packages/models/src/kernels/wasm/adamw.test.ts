import assert from 'node:assert/strict';
import { test } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { initBackend } from '@peftkit/core';
import '../../index.js'; // registers the kernels on backend ready
import { adamWKernel, hasAdamWKernel } from '../adamw.js';
import { adamWReference, type AdamWScalars } from '../reference/adamw.js';

const vals = (n: number, seed: number, scale: number) => Float32Array.from({ length: n }, (_, i) => Math.sin(i * 1.3 + seed) * scale);

test('PeftkitAdamW on WASM gives the reference\'s float32 bits: whole vectors and a remainder, with and without decay', async () => {
  await initBackend('wasm');
  assert.ok(hasAdamWKernel());
  for (const [n, decay] of [[4099, 1 - 1e-3 * 0.01], [8, 1], [3, 0.9995]] as const) {
    const pv = vals(n, 1, 1), gv = vals(n, 2, 0.01), mv = vals(n, 3, 0.001), vv = vals(n, 4, 1e-5).map(Math.abs);
    const s: AdamWScalars = { beta1: 0.9, beta2: 0.999, epsilon: 1e-8, decay, bc2Sqrt: Math.sqrt(1 - 0.999 ** 3), stepSize: 1e-3 / (1 - 0.9 ** 3) };
    const [p1, m1, v1] = adamWKernel(tf.tensor(pv), tf.tensor(gv), tf.tensor(mv), tf.tensor(vv), s);
    const ref = adamWReference(pv, gv, mv, vv, s);
    assert.deepEqual(p1.dataSync(), ref.p, `p, n = ${n}`);
    assert.deepEqual(m1.dataSync(), ref.m, `m, n = ${n}`);
    assert.deepEqual(v1.dataSync(), ref.v, `v, n = ${n}`);
    assert.ok(ref.p.some((x, i) => x !== pv[i]), 'the update moved p');
  }
  assert.throws(() => adamWKernel(tf.zeros([2]), tf.zeros([3]), tf.zeros([2]), tf.zeros([2]), { beta1: 0.9, beta2: 0.999, epsilon: 1e-8, decay: 1, bc2Sqrt: 1, stepSize: 1 }), /PeftkitAdamW: float32 p, g, m and v of one shape expected/);
});
