import assert from 'node:assert/strict';
import { test } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { initBackend } from '@peftkit/core';
import '../../index.js'; // registers the kernels on backend ready
import { hasNormKernels, normGradKernel, normKernel, type NormKind } from '../norm.js';
import { normGradReference, normReference } from '../reference/norm.js';

/** |got − ref| ≤ tol (1 + |ref|). */
function assertClose(got: ArrayLike<number>, ref: ArrayLike<number>, what: string, tol: number): void {
  assert.equal(got.length, ref.length, what);
  for (let i = 0; i < ref.length; i++) assert.ok(Math.abs(got[i] - ref[i]) <= tol * (1 + Math.abs(ref[i])), `${what} [${i}]: ${got[i]} vs ${ref[i]}`);
}

const vals = (n: number, seed: number, scale = 1, shift = 0) => Float32Array.from({ length: n }, (_, i) => Math.sin(i * 0.73 + seed) * scale + shift);

// Row lengths: one element, under a vector, whole vectors only, whole vectors and a remainder, a model's width.
for (const kind of ['layer', 'rms'] as NormKind[]) {
  test(`PeftkitNorm (${kind}) and its gradient on WASM equal the float64 reference`, async () => {
    await initBackend('wasm');
    assert.ok(hasNormKernels());
    for (const D of [1, 3, 8, 13, 768]) {
      const shape = [2, 3, D], rows = 6;
      const xv = vals(rows * D, 1, 2, 0.7), wv = vals(D, 2, 0.3, 1), bv = vals(D, 3, 0.3), dv = vals(rows * D, 4);
      const x = tf.tensor(xv, shape), w = tf.tensor1d(wv), b = tf.tensor1d(bv), dy = tf.tensor(dv, shape);
      const eps = 1e-5;
      const out = normKernel(kind, x, w, kind === 'layer' ? b : undefined, eps);
      const ref = normReference(kind, xv, rows, D, wv, bv, eps);
      assert.deepEqual(out.y.shape, shape);
      assert.deepEqual(out.a.shape, [2, 3, 1]);
      assertClose(out.y.dataSync(), ref.y, `${kind} y D=${D}`, 2e-6);
      assertClose(out.a.dataSync(), ref.a, `${kind} statistic D=${D}`, 2e-6);
      if (kind === 'layer') assertClose(out.b!.dataSync(), ref.b, `σ D=${D}`, 2e-6);
      const dx = normGradKernel(kind, x, out.a, out.b, w, dy);
      assertClose(dx.dataSync(), normGradReference(kind, xv, rows, D, wv, ref.a, ref.b, dv), `${kind} dx D=${D}`, 1e-5);
      tf.dispose([x, w, b, dy, out.y, out.a, dx, ...(out.b ? [out.b] : [])]);
    }
  });
}

test('PeftkitNorm on WASM names inputs that do not fit', async () => {
  await initBackend('wasm');
  const x = tf.zeros([2, 4]);
  assert.throws(() => normKernel('rms', x, tf.zeros([3]), undefined, 1e-6), /PeftkitNorm: float32 x \[\.\.\., D\], \[D\] weights.*got float32 \[2,4\], float32 \[3\]/);
  assert.throws(() => normGradKernel('rms', x, tf.zeros([2]), undefined, tf.zeros([4]), x), /PeftkitNormGrad: .*float32 \[2\]/);
});
