import assert from 'node:assert/strict';
import { test } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { initBackend } from '@peftkit/core';
import '../../index.js'; // registers the kernels on backend ready
import { replacedKernel } from '../replaced.js';
import { simplifyReduction, sumWasmConfig } from './sum.js';

/** Deterministic N(0, 1) samples (an LCG and Box-Muller), the same on every backend. */
function normals(n: number, seed: number): Float32Array {
  let s = seed >>> 0;
  const u = () => ((s = (Math.imul(s, 1664525) + 1013904223) >>> 0) + 0.5) / 2 ** 32;
  return Float32Array.from({ length: n }, () => Math.sqrt(-2 * Math.log(u())) * Math.cos(2 * Math.PI * u()));
}

/** The exact (float64) sum of `x` over `axes`, keeping the other axes in order. */
function sumReference(x: Float32Array, shape: number[], axes: number[]): Float64Array {
  const strides = [...tf.util.computeStrides(shape), 1];
  const kept = shape.map((_, a) => a).filter((a) => !axes.includes(a));
  const outShape = kept.map((a) => shape[a]);
  const outStrides = [...tf.util.computeStrides(outShape), 1];
  const out = new Float64Array(tf.util.sizeFromShape(outShape));
  for (let i = 0; i < x.length; i++) {
    let o = 0;
    kept.forEach((a, k) => (o += (Math.floor(i / strides[a]) % shape[a]) * outStrides[k]));
    out[o] += x[i];
  }
  return out;
}

// [shape, axes, keepDims]: leading, middle and mixed axes, axes of size 1, and cases the backend's
// own kernel keeps (innermost axes).
const CASES: [number[], number[], boolean][] = [
  [[7, 5], [0], false],
  [[33, 70], [0], true],
  [[3, 5, 7], [0], false],
  [[3, 5, 7], [1], true],
  [[3, 5, 7], [0, 1], false], // a broadcast bias's gradient
  [[3, 5, 7], [0, 2], false],
  [[2, 3, 4, 5], [0, 2], false],
  [[2, 3, 4, 5], [1, 3], true],
  [[2, 3, 4, 5], [0, 1, 2], false],
  [[2, 3, 4, 5], [0, 3], false],
  [[2, 3, 4, 5], [0, 1, 2, 3], false],
  [[1, 5], [0], false],
  [[5, 1], [0], false],
  [[1, 1], [0], true],
  [[4, 1, 6], [0, 1], false],
  [[3, 5, 7], [2], false], // innermost: the backend's kernel
  [[3, 5, 7], [1, 2], true],
  [[3, 65536], [0], false], // the largest output the kernel computes itself
  [[2, 3, 32769], [1], false], // 65538 outputs: the backend's kernel
  [[13, 6, 11], [1], false], // rows not a multiple of the four added per pass
];

test('wasm Sum over non-innermost axes equals the cpu backend\'s and the exact sum within float32 rounding', async () => {
  const inputs = CASES.map(([shape], i) => normals(tf.util.sizeFromShape(shape), i + 1));
  const run = () => CASES.map(([shape, axes, keepDims], i) => tf.tidy(() => {
    const y = tf.sum(tf.tensor(inputs[i], shape), axes, keepDims);
    return { shape: y.shape, values: y.dataSync() as Float32Array };
  }));
  await initBackend('cpu');
  const cpu = run();
  await initBackend('wasm');
  assert.equal(tf.getKernel(tf.Sum, 'wasm')?.kernelFunc, sumWasmConfig.kernelFunc, 'the override is registered');
  const wasm = run();
  CASES.forEach(([shape, axes], i) => {
    const msg = `${shape} over ${axes}`;
    assert.deepEqual(wasm[i].shape, cpu[i].shape, msg);
    const exact = sumReference(inputs[i], shape, axes);
    for (let j = 0; j < exact.length; j++) {
      assert.ok(Math.abs(wasm[i].values[j] - cpu[i].values[j]) <= 1e-5 * (1 + Math.abs(exact[j])), `${msg} [${j}]: ${wasm[i].values[j]} vs cpu ${cpu[i].values[j]}`);
      // Our own path rounds a float64 sum once: within half an ulp of float32 (2^-24 relative).
      const ours = tf.backend_util.getAxesPermutation(axes, shape.length) != null && exact.length <= 65536;
      if (ours) {
        assert.ok(Math.abs(wasm[i].values[j] - exact[j]) <= 2 ** -24 * Math.abs(exact[j]) + 1e-30, `${msg} [${j}]: ${wasm[i].values[j]} vs exact ${exact[j]}`);
      }
    }
  });
});

test('wasm Sum: int32 sums stay exact integers (the backend\'s own kernel)', async () => {
  await initBackend('wasm');
  const y = tf.sum(tf.tensor2d([[2 ** 24, 1], [1, 2], [3, -4]], [3, 2], 'int32'), 0);
  assert.equal(y.dtype, 'int32');
  assert.deepEqual(Array.from(y.dataSync()), [2 ** 24 + 4, -1]);
  y.dispose();
});

test('wasm Sum of [2048, 512] normal data over the rows: no less accurate than tfjs\'s own kernel', async (t) => {
  await initBackend('wasm');
  const shape = [2048, 512];
  const xv = normals(2048 * 512, 7);
  const exact = sumReference(xv, shape, [0]);
  const x = tf.tensor2d(xv, shape as [number, number]);
  const ours = tf.sum(x, 0);
  const theirsInfo = replacedKernel(tf.Sum, 'wasm')({ inputs: { x }, backend: tf.backend(), attrs: { axis: [0], keepDims: false } } as never) as tf.TensorInfo;
  const theirs = tf.engine().makeTensorFromTensorInfo(theirsInfo);
  const maxErr = (v: tf.TypedArray) => Array.from(v).reduce((m, y, j) => Math.max(m, Math.abs(y - exact[j])), 0);
  const [eo, et] = [maxErr(ours.dataSync()), maxErr(theirs.dataSync())];
  t.diagnostic(`max abs error against float64: ours ${eo.toExponential(2)}, tfjs ${et.toExponential(2)}`);
  assert.ok(eo <= et, `ours ${eo} vs tfjs ${et}`);
  assert.ok(eo < 1e-5, `ours ${eo}`); // column sums are about ±45: a float32 ulp there is 3.8e-6
  tf.dispose([x, ours, theirs]);
});

test('wasm Sum: the gradient of a broadcast bias, and no tensor leaks', async () => {
  await initBackend('wasm');
  const before = tf.memory().numTensors;
  const w = normals(2 * 3 * 4, 3);
  const x = tf.tensor3d(normals(24, 4), [2, 3, 4]);
  const b = tf.tensor1d([0.5, -1, 2, 0]);
  // d/db sum((x + b)·w) = w summed over the two leading axes.
  const g = tf.grad((bb: tf.Tensor) => tf.sum(tf.mul(tf.add(x, bb), tf.tensor3d(w, [2, 3, 4]))))(b);
  const exact = sumReference(w, [2, 3, 4], [0, 1]);
  const gv = g.dataSync();
  for (let c = 0; c < 4; c++) assert.ok(Math.abs(gv[c] - exact[c]) <= 1e-6, `column ${c}: ${gv[c]} vs ${exact[c]}`);
  tf.dispose([x, b, g]);
  assert.equal(tf.memory().numTensors, before);
});

test('simplifyReduction drops axes of size 1 and merges neighbours of the same kind', () => {
  assert.deepEqual(simplifyReduction([16, 128, 1, 512], [0, 1]), { sizes: [2048, 512], reduced: [true, false] });
  assert.deepEqual(simplifyReduction([2, 3, 4, 5], [1, 3]), { sizes: [2, 3, 4, 5], reduced: [false, true, false, true] });
  assert.deepEqual(simplifyReduction([2, 1, 3], [1]), { sizes: [6], reduced: [false] });
});
