// PeftkitMatMul on WebGPU (llvmpipe where there is no GPU) against tf.matMul on the cpu backend, at sizes that are
// not multiples of the tiles, with vec4 and scalar loads, both register-block heights, and the gradient.
// Own process: tfjs's backend is global.
import assert from 'node:assert/strict';
import { before, test } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { initBackend, webgpuUnavailable } from '@peftkit/core';
import '../../index.js'; // registers peftkit's kernels when a backend starts
import { matMulLast } from '../../nn/layers.js';
import { matMul2d, PEFTKIT_MATMUL } from '../matmul.js';
import { rowsPerInvocation } from './matmul.js';

const reason = await webgpuUnavailable();
if (reason) console.log(`# SKIP WebGPU matmul kernel: ${reason}`);

/** [M, K, N]: K and N each a multiple of 4 or not (vec4 or scalar loads), M across one and several row tiles. */
const SIZES: [number, number, number][] = [
  [1, 1, 1],
  [3, 5, 7],
  [17, 33, 65],
  [70, 20, 36],
  [130, 12, 67],
  [33, 50, 44],
  [1030, 9, 10], // 8 rows an invocation
];

/** Seeded operands, as plain arrays so both backends get the same numbers. */
function operands(M: number, K: number, N: number): { a: Float32Array; b: Float32Array; dy: Float32Array } {
  const fill = (n: number, s: number) => Float32Array.from({ length: n }, (_, i) => Math.sin(i * 0.731 + s) * 2 + Math.cos(i * 0.173 * s));
  return { a: fill(M * K, 1), b: fill(K * N, 2), dy: fill(M * N, 3) };
}

interface Expected {
  y: Float32Array;
  da: Float32Array;
  db: Float32Array;
}
const expected = new Map<string, Expected>();

before(async () => {
  if (reason) return;
  await initBackend('cpu');
  for (const [M, K, N] of SIZES) {
    const { a, b, dy } = operands(M, K, N);
    const [ta, tb, tdy] = [tf.tensor2d(a, [M, K]), tf.tensor2d(b, [K, N]), tf.tensor2d(dy, [M, N])];
    const y = tf.matMul(ta, tb);
    const [da, db] = tf.grads((x: tf.Tensor, w: tf.Tensor) => tf.sum(tf.mul(tf.matMul(x as tf.Tensor2D, w as tf.Tensor2D), tdy)))([ta, tb]);
    expected.set(`${M}x${K}x${N}`, { y: y.dataSync() as Float32Array, da: da.dataSync() as Float32Array, db: db.dataSync() as Float32Array });
    tf.dispose([ta, tb, tdy, y, da, db]);
  }
  await initBackend('webgpu');
});

/** max |a − e| ≤ rtol · max |e|: float32 sums in another order differ by a few ulps of the largest terms. */
function assertClose(actual: Float32Array, want: Float32Array, what: string, rtol = 1e-5): void {
  assert.equal(actual.length, want.length, `${what}: size`);
  let diff = 0;
  let scale = 0;
  for (let i = 0; i < want.length; i++) {
    diff = Math.max(diff, Math.abs(actual[i] - want[i]));
    scale = Math.max(scale, Math.abs(want[i]));
  }
  assert.ok(scale > 0 && diff <= rtol * scale, `${what}: max |diff| ${diff.toExponential(3)} > ${rtol} × max |cpu| ${scale.toExponential(3)}`);
}

test('PeftkitMatMul equals tf.matMul on the cpu backend at sizes that are not multiples of the tiles', { skip: reason }, async () => {
  assert.equal(tf.getBackend(), 'webgpu');
  assert.deepEqual([rowsPerInvocation(1030), rowsPerInvocation(130)], [8, 4]);
  for (const [M, K, N] of SIZES) {
    const { a, b } = operands(M, K, N);
    const [ta, tb] = [tf.tensor2d(a, [M, K]), tf.tensor2d(b, [K, N])];
    const y = tf.engine().runKernel(PEFTKIT_MATMUL, { a: ta, b: tb }, {}) as tf.Tensor;
    assert.deepEqual(y.shape, [M, N]);
    assertClose((await y.data()) as Float32Array, expected.get(`${M}x${K}x${N}`)!.y, `${M}x${K}x${N}`);
    tf.dispose([ta, tb, y]);
  }
});

test('its gradient (dA = dY·Bᵀ, dB = Aᵀ·dY through the same kernel) equals the cpu backend\'s', { skip: reason }, async () => {
  for (const [M, K, N] of SIZES.slice(1, 5)) {
    const { a, b, dy } = operands(M, K, N);
    const [ta, tb, tdy] = [tf.tensor2d(a, [M, K]), tf.tensor2d(b, [K, N]), tf.tensor2d(dy, [M, N])];
    const [da, db] = tf.grads((x: tf.Tensor, w: tf.Tensor) => tf.sum(tf.mul(matMul2d(x as tf.Tensor2D, w as tf.Tensor2D), tdy)))([ta, tb]);
    const want = expected.get(`${M}x${K}x${N}`)!;
    assertClose((await da.data()) as Float32Array, want.da, `dA ${M}x${K}x${N}`);
    assertClose((await db.data()) as Float32Array, want.db, `dB ${M}x${K}x${N}`);
    tf.dispose([ta, tb, tdy, da, db]);
  }
});

test('matMulLast runs PeftkitMatMul on webgpu, forward and backward, for both weight layouts', { skip: reason }, async () => {
  const x = tf.randomNormal([2, 5, 12], 0, 1, 'float32', 3);
  for (const transposeW of [false, true]) {
    const w = tf.variable(tf.randomNormal(transposeW ? [7, 12] : [12, 7], 0, 1, 'float32', 4));
    const profile = await tf.profile(() => tf.grads((xx: tf.Tensor, ww: tf.Tensor) => tf.sum(matMulLast(xx, ww, transposeW)))([x, w]));
    const names = profile.kernels.map((k) => k.name);
    // y = x·W, dx = dy·Wᵀ, dW = xᵀ·dy (or their NT forms): three products, all ours.
    assert.equal(names.filter((n) => n === PEFTKIT_MATMUL).length, 3, `transposeW ${transposeW}: kernels ${names.join(', ')}`);
    assert.ok(!names.includes('BatchMatMul'), `transposeW ${transposeW}: kernels ${names.join(', ')}`);
    w.dispose();
  }
  x.dispose();
});
