import assert from 'node:assert/strict';
import { test } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { initBackend } from '@peftkit/core';
import '../../index.js'; // registers the kernels on backend ready
import { applyRotary, PEFTKIT_ROTARY } from '../rotary.js';
import { rotaryReference } from '../reference/rotary.js';

const vals = (n: number, seed: number) => Float32Array.from({ length: n }, (_, i) => Math.sin(i * 0.71 + seed) * 1.5);

/** |got − ref| ≤ 1e-6 (1 + |ref|): one or two float32 roundings of terms at most about 2 in size. */
function assertClose(got: ArrayLike<number>, ref: ArrayLike<number>, what: string): void {
  assert.equal(got.length, ref.length, what);
  for (let i = 0; i < ref.length; i++) assert.ok(Math.abs(got[i] - ref[i]) <= 1e-6 * (1 + Math.abs(ref[i])), `${what} [${i}]: ${got[i]} vs ${ref[i]}`);
}

// [x shape, cos/sin batch]: one batch, cos/sin per batch row, one position (a decoding step), D = 2.
const CASES: [number[], number][] = [[[1, 3, 5, 8], 1], [[2, 2, 4, 6], 2], [[2, 3, 1, 4], 1], [[1, 1, 3, 2], 1]];

for (const backend of ['wasm', 'cpu']) {
  test(`rotary on ${backend} (${backend === 'wasm' ? 'the PeftkitRotary kernel' : 'composed ops'}): values and dx equal the reference`, async () => {
    await initBackend(backend as 'wasm' | 'cpu');
    assert.equal(Boolean(tf.getKernel(PEFTKIT_ROTARY, backend)), backend === 'wasm');
    for (const [shape, cb] of CASES) {
      const [B, H, T, D] = shape;
      const xv = vals(B * H * T * D, 1), wv = vals(B * H * T * D, 2);
      // cos/sin with different halves (a general table, not only HF's cat(freqs, freqs)), so that a swapped half shows.
      const cv = vals(cb * T * D, 3), sv = vals(cb * T * D, 4);
      const x = tf.tensor4d(xv, shape as [number, number, number, number]), w = tf.tensor(wv, shape);
      const cos = tf.tensor(cv, [cb, 1, T, D]), sin = tf.tensor(sv, [cb, 1, T, D]);
      assertClose(applyRotary(x, cos, sin).dataSync(), rotaryReference(xv, shape, cv, sv, cb), `y ${shape}`);
      // d/dx Σ w · rotary(x) is the transposed rotation of w.
      const g = tf.grad((t: tf.Tensor) => tf.sum(tf.mul(applyRotary(t as tf.Tensor4D, cos, sin), w)))(x);
      assertClose(g.dataSync(), rotaryReference(wv, shape, cv, sv, cb, true), `dx ${shape}`);
      tf.dispose([x, w, cos, sin, g]);
    }
  });
}

test('the transposed rotation undoes the rotation where cos² + sin² = 1 (the reference\'s two directions agree)', () => {
  const shape = [1, 2, 3, 4];
  const angles = vals(3 * 4, 5);
  const cv = angles.map(Math.cos), sv = angles.map(Math.sin);
  for (let t = 0; t < 3; t++) for (let i = 0; i < 2; i++) { cv[t * 4 + 2 + i] = cv[t * 4 + i]; sv[t * 4 + 2 + i] = sv[t * 4 + i]; } // HF's halves
  const xv = vals(24, 6);
  const back = rotaryReference(rotaryReference(xv, shape, cv, sv, 1), shape, cv, sv, 1, true);
  back.forEach((v, i) => assert.ok(Math.abs(v - xv[i]) < 1e-6, `${i}: ${v} vs ${xv[i]}`));
});

test('PeftkitRotary on wasm names a bad shape', async () => {
  await initBackend('wasm');
  const x = tf.zeros([1, 1, 2, 3]) as tf.Tensor4D, c = tf.zeros([1, 1, 2, 3]);
  assert.throws(() => applyRotary(x, c, c), /PeftkitRotary: x must be \[B, H, T, D\] with D even, got \[1,1,2,3\]/);
  const x4 = tf.zeros([2, 1, 2, 4]) as tf.Tensor4D, c3 = tf.zeros([3, 1, 2, 4]);
  assert.throws(() => applyRotary(x4, c3, c3), /cos and sin must be \[2 or 1, 1, 2, 4\], got \[3,1,2,4\]/);
  tf.dispose([x, c, x4, c3]);
});
