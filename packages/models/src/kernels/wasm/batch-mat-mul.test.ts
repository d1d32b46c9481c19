import assert from 'node:assert/strict';
import { test } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { initBackend } from '@peftkit/core';
import '../../index.js'; // registers the kernels on backend ready
import { matMulReference } from '../reference/matmul.js';

const vals = (n: number, seed: number) => Float32Array.from({ length: n }, (_, i) => Math.sin(i * 0.37 + seed) * (1 + (i % 5) / 4));

// [aShape, bShape, transposeA, transposeB]; every path of the kernel: per-slice (batched B, with and
// without flags, A broadcast), folded (unbatched B with transposeB), and cases handed back to tfjs.
const CASES: [number[], number[], boolean, boolean][] = [
  [[2, 3, 5, 7], [2, 3, 7, 4], false, false], // attention's probs·v
  [[2, 3, 5, 7], [2, 3, 6, 7], false, true], // q·kᵀ
  [[6, 7, 5], [6, 7, 4], true, false], // the gradients' Aᵀ·dY
  [[6, 5, 7], [6, 4, 5], true, true],
  [[1, 5, 7], [3, 7, 4], false, false], // A broadcast over B's batch
  [[5, 7], [3, 7, 4], false, false],
  [[3, 5, 7], [7, 4], false, false], // the backend's own fast path
  [[3, 5, 7], [1, 4, 7], false, true], // folded: [15, 7] · Bᵀ
  [[3, 7, 5], [7, 4], true, false], // unbatched B, transposed A: per slice
  [[5, 7], [4, 7], false, true], // 2-D with a flag: the backend's own
  [[4, 1, 9], [4, 9, 1], false, false], // vectors
];

test('wasm BatchMatMul equals the reference for batched, transposed and broadcast products', async () => {
  await initBackend('wasm');
  for (const [as, bs, ta, tb] of CASES) {
    const av = vals(as.reduce((x, y) => x * y), 1), bv = vals(bs.reduce((x, y) => x * y), 2);
    const ref = matMulReference(av, as, bv, bs, ta, tb);
    const got = tf.tidy(() => tf.matMul(tf.tensor(av, as), tf.tensor(bv, bs), ta, tb));
    assert.deepEqual(got.shape, ref.shape, `${as} ${bs} ${ta} ${tb}`);
    const g = got.dataSync();
    for (let i = 0; i < g.length; i++) assert.ok(Math.abs(g[i] - ref.values[i]) <= 1e-5 * (1 + Math.abs(ref.values[i])), `${as}·${bs} (${ta}, ${tb}) [${i}]: ${g[i]} vs ${ref.values[i]}`);
    got.dispose();
  }
});

test('wasm BatchMatMul: gradients of a batched product equal the reference, and no scratch tensor leaks', async () => {
  await initBackend('wasm');
  const as = [2, 3, 4, 5], bs = [2, 3, 6, 5];
  const av = vals(120, 3), bv = vals(180, 4), dyv = vals(2 * 3 * 4 * 6, 5);
  const before = tf.memory().numBytes;
  const [da, db] = tf.tidy(() => tf.grads((x: tf.Tensor, y: tf.Tensor) => tf.sum(tf.mul(tf.matMul(x, y, false, true), tf.tensor(dyv, [2, 3, 4, 6]))))([tf.tensor(av, as), tf.tensor(bv, bs)]));
  // dA = dY·B, dB = dYᵀ·A.
  const ra = matMulReference(dyv, [2, 3, 4, 6], bv, bs);
  const rb = matMulReference(dyv, [2, 3, 4, 6], av, as, true, false);
  for (const [got, ref] of [[da, ra], [db, rb]] as const) {
    const g = got.dataSync();
    for (let i = 0; i < g.length; i++) assert.ok(Math.abs(g[i] - ref.values[i]) <= 1e-5 * (1 + Math.abs(ref.values[i])));
  }
  tf.dispose([da, db]);
  assert.equal(tf.memory().numBytes, before);
});

test('batch axes that broadcast against each other ([1, 3] with [3, 1]) give what tfjs\'s cpu backend gives', async () => {
  // tfjs's own contract: it broadcasts whole operands only, so this is not the reference's NumPy result; before,
  // the slice loop here paired 3 of the 9 slices and left the rest of the output unwritten.
  for (const [as, bs] of [[[1, 3, 5, 7], [3, 1, 7, 4]], [[1, 3, 20, 7], [3, 1, 7, 4]]]) {
    const av = vals(as.reduce((x, y) => x * y), 1), bv = vals(bs.reduce((x, y) => x * y), 2);
    await initBackend('cpu');
    const want = tf.matMul(tf.tensor(av, as), tf.tensor(bv, bs)).dataSync();
    await initBackend('wasm');
    const got = tf.matMul(tf.tensor(av, as), tf.tensor(bv, bs)).dataSync();
    assert.equal(got.length, want.length);
    for (let i = 0; i < got.length; i++) assert.ok(Math.abs(got[i] - want[i]) <= 1e-5 * (1 + Math.abs(want[i])), `${as}·${bs} [${i}]: ${got[i]} vs ${want[i]}`);
  }
});

test('an empty inner size gives zeros, an empty batch an empty result', async () => {
  await initBackend('wasm');
  for (const [as, bs] of [[[17, 0], [0, 9]], [[2, 17, 0], [2, 0, 9]], [[3, 0], [0, 9]]]) {
    const got = tf.matMul(tf.zeros(as), tf.zeros(bs));
    assert.deepEqual(got.shape, [...as.slice(0, -1), 9]);
    assert.ok(got.dataSync().every((v) => v === 0), `${as}·${bs}`);
    got.dispose();
  }
  const empty = tf.matMul(tf.zeros([0, 17, 5]), tf.zeros([5, 9]));
  assert.deepEqual(empty.shape, [0, 17, 9]);
  empty.dispose();
});

test('the backend\'s error for mismatched inner sizes is kept', async () => {
  await initBackend('wasm');
  assert.throws(() => tf.matMul(tf.zeros([2, 3, 4]), tf.zeros([2, 5, 6])), /inner shapes/);
});
