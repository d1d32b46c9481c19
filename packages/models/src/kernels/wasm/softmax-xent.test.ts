import assert from 'node:assert/strict';
import { test } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { initBackend } from '@peftkit/core';
import '../../index.js'; // registers the kernels on backend ready
import { hasSoftmaxXentKernels, softmaxXentGradKernel, softmaxXentKernel } from '../softmax-xent.js';
import { softmaxXentGradReference, softmaxXentReference } from '../reference/softmax-xent.js';
import { SOFTMAX_UNROLL } from './softmax-xent-wat.js';

/** |got − ref| ≤ tol (1 + |ref|). */
function assertClose(got: ArrayLike<number>, ref: ArrayLike<number>, what: string, tol: number): void {
  assert.equal(got.length, ref.length, what);
  for (let i = 0; i < ref.length; i++) assert.ok(Math.abs(got[i] - ref[i]) <= tol * (1 + Math.abs(ref[i])), `${what} [${i}]: ${got[i]} vs ${ref[i]}`);
}

// Row lengths: under one vector, a partial vector after whole ones, through all three loops (unrolled, single
// vectors, tail), and a vocabulary's size; logits spread over ±30 (the clamp of e^t is the next test's).
const LENGTHS = [1, 3, 6, 4 * SOFTMAX_UNROLL * 2 + 8 + 3, 4099];
const logitsOf = (r: number, V: number) => Float32Array.from({ length: r * V }, (_, k) => Math.sin(k * 0.37) * 30 * Math.cos(k * 0.011));

test('PeftkitSoftmaxXent and its gradient on WASM equal the float64 reference: probabilities, nll and dLogits', async () => {
  await initBackend('wasm');
  assert.ok(hasSoftmaxXentKernels());
  for (const V of LENGTHS) {
    const r = 3;
    const xv = logitsOf(r, V);
    const tv = Int32Array.from({ length: r }, (_, i) => (i * 7919) % V);
    const sv = Float32Array.from([0.5, 0, -1.25]); // a row with scale 0: an ignored target
    const x = tf.tensor2d(xv, [r, V]), t = tf.tensor1d(tv, 'int32'), s = tf.tensor1d(sv);
    const { probs, nll } = softmaxXentKernel(x, t);
    const ref = softmaxXentReference(xv, r, V, tv);
    // Probabilities: e^t's ~1e−7 and float32 roundings, against values ≤ 1; nll: logsumexp of values up to 30.
    assertClose(probs.dataSync(), ref.probs, `probs V=${V}`, 5e-7);
    assertClose(nll.dataSync(), ref.nll, `nll V=${V}`, 1e-6);
    const g = softmaxXentGradKernel(probs, t, s);
    assertClose(g.dataSync(), softmaxXentGradReference(probs.dataSync(), r, V, tv, sv), `dLogits V=${V}`, 1e-7);
    tf.dispose([x, t, s, probs, nll, g]);
  }
});

test('PeftkitSoftmaxXent on WASM: a row far below its maximum (e^t clamped) still sums to one, NaN spreads, bad input is named', async () => {
  await initBackend('wasm');
  const x = tf.tensor2d([[0, -200, -1000, 5, 0, -90, 3], [Number.NaN, 1, 2, 3, 4, 5, 6]]);
  const { probs, nll } = softmaxXentKernel(x, tf.tensor1d([2, 1], 'int32'));
  const p = probs.arraySync();
  assert.ok(Math.abs(p[0].reduce((a, b) => a + b, 0) - 1) < 1e-6);
  assert.ok(p[0][2] < 1e-37 && p[0][1] < 1e-37, 'e^(−1000 − 5) is clamped to e^−87, not more');
  assert.ok(Number.isNaN(nll.dataSync()[1]), 'a NaN logit makes its row\'s loss NaN');
  assert.ok(Math.abs(nll.dataSync()[0] - (5 + Math.log(Math.exp(-5) * 2 + 1 + Math.exp(-2) + Math.exp(-95)) + 1000)) < 1e-3);
  assert.throws(() => softmaxXentKernel(x, tf.tensor1d([2, 7], 'int32')), /PeftkitSoftmaxXent: target 7 of row 1 is not in \[0, 7\)/);
  assert.throws(() => softmaxXentKernel(x, tf.tensor1d([2, 1])), /float32 \[r, V\] and int32 targets \[r\] expected/);
  assert.throws(() => softmaxXentGradKernel(probs, tf.tensor1d([2, 1], 'int32'), tf.tensor1d([1])), /float32 scale \[2\] expected, got float32 \[1\]/);
});
