import assert from 'node:assert/strict';
import { test } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { initBackend } from '@peftkit/core';
import '../../index.js'; // registers the kernels on backend ready
import { activationGradKernel, activationKernel, hasActivationKernels, type ActivationKernelFn } from '../activation.js';
import { activationGradReference, activationReference } from '../reference/activation.js';
import { UNROLL } from './activation-wat.js';

/** |got − ref| ≤ tol (1 + |ref|): e^t's relative error (about 1e−7), a division and a few float32 roundings: 1.3e−7 at most measured. */
function assertClose(got: ArrayLike<number>, ref: ArrayLike<number>, what: string, tol = 5e-7): void {
  assert.equal(got.length, ref.length, what);
  for (let i = 0; i < ref.length; i++) assert.ok(Math.abs(got[i] - ref[i]) <= tol * (1 + Math.abs(ref[i])), `${what} [${i}]: ${got[i]} vs ${ref[i]}`);
}

// Sizes around the vector width (the 1-3 element tail), one through all three loops (unrolled, single vectors, tail),
// one of several thousand; values from −12 to 12, then far out where e^t is clamped (σ is 0 or 1 there in float32).
const SIZES = [1, 2, 3, 4, 5, 7, 4 * UNROLL * 3 + 8 + 2, 4099];
const FAR = [-1000, -100, -60, -20, 20, 60, 100, 1000];
const values = (n: number, seed: number) => Float32Array.from({ length: n }, (_, i) => (n > 100 ? -12 + (24 * i) / n : Math.sin(i * 1.7 + seed) * 6));

test('PeftkitActivation and its gradient on WASM equal the float64 reference: gelu_tanh and silu, tails, far values', async () => {
  await initBackend('wasm');
  assert.ok(hasActivationKernels(), 'the kernels are registered for wasm');
  for (const fn of ['gelu_tanh', 'silu'] as ActivationKernelFn[]) {
    for (const xv of [...SIZES.map((n) => values(n, 1)), Float32Array.from(FAR)]) {
      const dv = xv.map((_, i) => Math.cos(i * 0.9) * 2);
      const x = tf.tensor(xv), dy = tf.tensor(dv);
      assertClose(activationKernel(fn, x).dataSync(), activationReference(fn, xv), `${fn} (${xv.length})`);
      assertClose(activationGradKernel(fn, x, dy).dataSync(), activationGradReference(fn, xv, dv), `${fn}′ (${xv.length})`);
      tf.dispose([x, dy]);
    }
  }
});

test('PeftkitActivation on WASM: NaN stays NaN, an empty tensor stays empty, a wrong dtype or fn is named', async () => {
  await initBackend('wasm');
  const x = tf.tensor([Number.NaN, 1, Number.NaN, -2, 3]);
  const y = activationKernel('silu', x).dataSync();
  assert.ok(Number.isNaN(y[0]) && Number.isNaN(y[2]) && Math.abs(y[1] - 0.7310586) < 1e-6);
  assert.deepEqual(activationKernel('gelu_tanh', tf.zeros([0, 3])).shape, [0, 3]);
  assert.throws(() => activationKernel('silu', tf.tensor([1, 2], [2], 'int32')), /PeftkitActivation: float32 input expected, got int32/);
  assert.throws(() => activationKernel('relu' as ActivationKernelFn, x), /PeftkitActivation: no kernel for "relu"/);
  assert.throws(() => activationGradKernel('silu', x, tf.zeros([4])), /x \[5\] and dy \[4\] differ in shape/);
  x.dispose();
});

test('the models\' activations run these kernels on WASM, forward and backward, and no Sigmoid', async () => {
  await initBackend('wasm');
  const { activation, gatedActivation } = await import('../../nn/activations.js');
  const x = tf.randomNormal([4, 9], 0, 2, 'float32', 1), up = tf.randomNormal([4, 9], 0, 1, 'float32', 2);
  const info = await tf.profile(() => {
    const g = tf.grads((a: tf.Tensor, u: tf.Tensor) => tf.sum(tf.add(activation('gelu_new')(a), gatedActivation('silu')(a, u))))([x, up]);
    tf.dispose(g);
    return [];
  });
  const names = info.kernels.map((k) => k.name);
  assert.equal(names.filter((n) => n === 'PeftkitActivation').length, 3, 'gelu_new, silu, and silu again in the gated gradient');
  assert.equal(names.filter((n) => n === 'PeftkitActivationGrad').length, 2);
  assert.ok(!names.includes('Sigmoid'), names.join(', '));
  tf.dispose([x, up]);
});
