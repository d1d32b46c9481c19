import assert from 'node:assert/strict';
import { test } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { initBackend } from '@peftkit/core';
import '../../index.js'; // registers the kernels on backend ready
import { simplifyPermutation, transposeInto, transposeWasmConfig } from './transpose.js';

/** Every permutation of [0, n). */
function permutations(n: number): number[][] {
  if (n === 0) return [[]];
  return permutations(n - 1).flatMap((p) => Array.from({ length: n }, (_, i) => [...p.slice(0, i), n - 1, ...p.slice(i)]));
}

// Odd sizes that are not multiples of the 32-wide tile, sizes of 1, and one shape larger than a tile
// on both transposed axes.
const SHAPES: number[][] = [[7], [5, 3], [33, 70], [1, 9], [3, 5, 7], [2, 1, 37], [2, 3, 5, 7], [3, 1, 4, 1], [2, 35, 3, 40]];

type Dtype = 'float32' | 'int32' | 'bool';
const values = (n: number, dtype: Dtype) => Array.from({ length: n }, (_, i) => (dtype === 'float32' ? Math.sin(i) * 1e3 : dtype === 'int32' ? i * 7 - 50 : i % 3 === 0 ? 1 : 0));

function transposeOnActive(shape: number[], perm: number[], dtype: Dtype) {
  const x = tf.tensor(values(tf.util.sizeFromShape(shape), dtype), shape, dtype);
  const y = tf.transpose(x, perm);
  const out = { shape: y.shape, dtype: y.dtype, values: y.dataSync() };
  tf.dispose([x, y]);
  return out;
}

const bytes = (a: tf.TypedArray) => Buffer.from(a.buffer, a.byteOffset, a.byteLength);

test('transposeInto (the kernel\'s loop) equals the cpu backend\'s Transpose exactly for every permutation of rank 1 to 4, simplified or not', async () => {
  await initBackend('cpu');
  for (const shape of SHAPES) {
    for (const perm of permutations(shape.length)) {
      for (const dtype of ['float32', 'int32'] as const) {
        const ref = transposeOnActive(shape, perm, dtype);
        const src = dtype === 'float32' ? Float32Array.from(values(ref.values.length, dtype)) : Int32Array.from(values(ref.values.length, dtype));
        const simple = simplifyPermutation(shape, perm);
        for (const [s, p] of [[shape, perm], [simple.shape, simple.perm]]) {
          const dst = new (src.constructor as Float32ArrayConstructor)(src.length);
          transposeInto(src, s, p, dst);
          assert.ok(bytes(dst).equals(bytes(ref.values)), `${shape} perm ${perm} as ${s} perm ${p} ${dtype}`);
        }
      }
    }
  }
});

/** The same transposes on the cpu backend, then on wasm (switching backends once each: a switch costs time). */
async function onBoth(cases: [number[], number[], Dtype][]) {
  await initBackend('cpu');
  const ref = cases.map(([s, p, d]) => transposeOnActive(s, p, d));
  await initBackend('wasm');
  const got = cases.map(([s, p, d]) => transposeOnActive(s, p, d));
  return { ref, got };
}

test('wasm Transpose equals the cpu backend\'s exactly: matrices it takes (2-D, batched, ranks 5 and 6 that simplify to them) and cases it hands back', async () => {
  const cases: [number[], number[], Dtype][] = [
    [[2048, 512], [1, 0], 'float32'], // the MLP's c_proj input, transposed for dW
    [[4, 2048, 128], [0, 2, 1], 'float32'],
    [[3, 512, 171], [0, 2, 1], 'int32'], // odd columns
    [[1, 1024, 1, 37], [3, 2, 0, 1], 'bool'], // 2-D once the axes of size 1 are dropped
    [[2, 3, 512, 1, 70], [0, 1, 4, 3, 2], 'float32'], // a batch of 6 after merging
    [[5, 1, 2, 1024, 33, 1], [0, 5, 1, 2, 4, 3], 'float32'], // rank 6, a batch of 10 [1024, 33]
    [[5, 2, 1024, 33], [1, 0, 3, 2], 'float32'], // rank 4 after simplifying: the backend's own
    [[2032, 128], [1, 0], 'float32'], // the backend's own (no cache collisions there)
    [[16, 128, 4, 32], [0, 2, 1, 3], 'float32'], // attention's heads: the backend's own
    [[16, 4, 128, 32], [0, 1, 3, 2], 'float32'], // kᵀ: small matrices, the backend's own
    [[2, 3, 5, 7], [3, 1, 0, 2], 'int32'],
    [[33, 70], [1, 0], 'float32'],
  ];
  const { ref, got } = await onBoth(cases);
  assert.equal(tf.getKernel(tf.Transpose, 'wasm')?.kernelFunc, transposeWasmConfig.kernelFunc, 'the override is registered');
  cases.forEach(([shape, perm, dtype], i) => {
    const msg = `${shape} perm ${perm} ${dtype}`;
    assert.deepEqual([got[i].shape, got[i].dtype], [ref[i].shape, ref[i].dtype], msg);
    assert.ok(bytes(got[i].values).equals(bytes(ref[i].values)), msg);
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
