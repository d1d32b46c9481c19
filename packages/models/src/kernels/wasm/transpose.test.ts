import assert from 'node:assert/strict';
import { test } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { initBackend } from '@peftkit/core';
import '../../index.js'; // registers the kernels on backend ready
import { simplifyPermutation, transposeWasmConfig } from './transpose.js';

/** Every permutation of [0, n). */
function permutations(n: number): number[][] {
  if (n === 0) return [[]];
  return permutations(n - 1).flatMap((p) => Array.from({ length: n }, (_, i) => [...p.slice(0, i), n - 1, ...p.slice(i)]));
}

// Odd sizes that are not multiples of the 32-wide tile, sizes of 1 (dropped before the loop), and
// one shape larger than a tile on both transposed axes.
const SHAPES: number[][] = [[7], [5, 3], [33, 70], [1, 9], [3, 5, 7], [2, 1, 37], [2, 3, 5, 7], [3, 1, 4, 1], [2, 35, 3, 40]];

function transposeOnActive(shape: number[], perm: number[], dtype: 'float32' | 'int32' | 'bool') {
  const n = shape.reduce((a, b) => a * b, 1);
  const vals = Array.from({ length: n }, (_, i) => (dtype === 'float32' ? Math.sin(i) * 1e3 : dtype === 'int32' ? i * 7 - 50 : i % 3 === 0 ? 1 : 0));
  const x = tf.tensor(vals, shape, dtype);
  const y = tf.transpose(x, perm);
  const out = { shape: y.shape, dtype: y.dtype, values: y.dataSync() };
  tf.dispose([x, y]);
  return out;
}

/** The same transposes on the cpu backend, then on wasm (switching backends once each: a switch costs time). */
async function onBoth(cases: [number[], number[], 'float32' | 'int32' | 'bool'][]) {
  await initBackend('cpu');
  const ref = cases.map(([s, p, d]) => transposeOnActive(s, p, d));
  await initBackend('wasm');
  const got = cases.map(([s, p, d]) => transposeOnActive(s, p, d));
  return { ref, got };
}

const bytes = (a: tf.TypedArray) => Buffer.from(a.buffer, a.byteOffset, a.byteLength);

test('wasm Transpose equals the cpu backend\'s exactly for every permutation of rank 1 to 4, float32, int32 and bool', async () => {
  const cases = SHAPES.flatMap((shape) => permutations(shape.length).flatMap((perm) => (['float32', 'int32', 'bool'] as const).map((d) => [shape, perm, d] as [number[], number[], typeof d])));
  const { ref, got } = await onBoth(cases);
  assert.equal(tf.getKernel(tf.Transpose, 'wasm')?.kernelFunc, transposeWasmConfig.kernelFunc, 'the override is registered');
  cases.forEach(([shape, perm, dtype], i) => {
    const msg = `${shape} perm ${perm} ${dtype}`;
    assert.deepEqual([got[i].shape, got[i].dtype], [ref[i].shape, ref[i].dtype], msg);
    assert.deepEqual(Array.from(got[i].values), Array.from(ref[i].values), msg);
  });
});

test('wasm Transpose: ranks 5 and 6 and the shapes of the main job', async () => {
  const cases: [number[], number[], 'float32'][] = [
    [[2, 3, 2, 3, 4], [4, 2, 0, 3, 1], 'float32'],
    [[2, 2, 3, 1, 2, 3], [5, 0, 3, 2, 4, 1], 'float32'],
    [[2048, 512], [1, 0], 'float32'], // the MLP's c_proj input, transposed for dW
    [[16, 128, 4, 32], [0, 2, 1, 3], 'float32'], // attention's heads
    [[16, 4, 128, 32], [0, 1, 3, 2], 'float32'], // kᵀ
  ];
  const { ref, got } = await onBoth(cases);
  cases.forEach(([shape, perm], i) => {
    assert.deepEqual(got[i].shape, ref[i].shape);
    assert.ok(bytes(got[i].values).equals(bytes(ref[i].values)), `${shape} perm ${perm}`);
  });
});

test('wasm Transpose: the gradient of a transpose, and no tensor leaks', async () => {
  await initBackend('wasm');
  const before = tf.memory().numTensors;
  const x = tf.tensor3d(Array.from({ length: 60 }, (_, i) => i), [3, 4, 5]);
  const w = tf.tensor3d(Array.from({ length: 60 }, (_, i) => (i % 7) - 3), [5, 3, 4]);
  const g = tf.grad((t: tf.Tensor) => tf.sum(tf.mul(tf.transpose(t, [2, 0, 1]), w)))(x);
  // d/dx sum(transpose(x)·w) = w transposed back: g[i][j][k] = w[k][i][j].
  const wv = w.arraySync() as number[][][];
  const gv = g.arraySync() as number[][][];
  for (let i = 0; i < 3; i++) for (let j = 0; j < 4; j++) for (let k = 0; k < 5; k++) assert.equal(gv[i][j][k], wv[k][i][j]);
  tf.dispose([x, w, g]);
  assert.equal(tf.memory().numTensors, before);
});

test('simplifyPermutation drops axes of size 1 and merges axes that stay adjacent', () => {
  assert.deepEqual(simplifyPermutation([2, 3, 4, 5], [0, 2, 3, 1]), { shape: [2, 3, 20], perm: [0, 2, 1] });
  assert.deepEqual(simplifyPermutation([16, 128, 4, 32], [0, 2, 1, 3]), { shape: [16, 128, 4, 32], perm: [0, 2, 1, 3] });
  assert.deepEqual(simplifyPermutation([3, 1, 4], [2, 1, 0]), { shape: [3, 4], perm: [1, 0] });
  assert.deepEqual(simplifyPermutation([2, 3, 4], [0, 1, 2]), { shape: [24], perm: [0] });
  assert.deepEqual(simplifyPermutation([1, 1], [1, 0]), { shape: [], perm: [] });
});
