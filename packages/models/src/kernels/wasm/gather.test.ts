import assert from 'node:assert/strict';
import { test } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { initBackend } from '@peftkit/core';
import '../../index.js'; // registers the kernels on backend ready
import { gatherV2WasmConfig } from './gather.js';

// [x shape, dtype, indices, indices shape, axis, batchDims]: an embedding lookup (2-D ids), a middle axis, the last
// axis (slices of one element), batch dims, repeated indices, int32 values, an empty lookup.
const CASES: [number[], 'float32' | 'int32', number[], number[], number, number][] = [
  [[11, 5], 'float32', [3, 1, 3, 0, 10, 3, 1, 7], [2, 4], 0, 0],
  [[2, 6, 3], 'float32', [5, 0, 2], [3], 1, 0],
  [[4, 7], 'int32', [6, 6, 0], [3], 1, 0],
  [[2, 5, 3], 'float32', [4, 0, 1, 1], [2, 2], 1, 1],
  [[3, 4], 'float32', [], [0], 0, 0],
];

function run(): number[][] {
  return CASES.map(([shape, dtype, ids, idShape, axis, batchDims]) => {
    const n = shape.reduce((a, b) => a * b, 1);
    const x = tf.tensor(Array.from({ length: n }, (_, i) => (dtype === 'int32' ? i * 3 - 7 : Math.sin(i + 0.5))), shape, dtype);
    const y = tf.gather(x, tf.tensor(ids, idShape, 'int32'), axis, batchDims);
    const out = [...y.shape, ...y.dataSync()];
    tf.dispose([x, y]);
    return out;
  });
}

test('GatherV2 on wasm gives the cpu backend\'s outputs and shapes, and names an index out of range', async () => {
  await initBackend('cpu');
  const cpu = run();
  await initBackend('wasm');
  assert.equal(tf.getBackend(), 'wasm');
  assert.equal(tf.getKernel(tf.GatherV2, 'wasm')?.kernelFunc, gatherV2WasmConfig.kernelFunc, 'the override is registered');
  assert.deepEqual(run(), cpu);
  assert.ok(cpu[0].length > 2 && cpu[4].length === 2, 'the cases have outputs (and an empty one)');
  const x = tf.tensor2d([1, 2, 3, 4], [2, 2]);
  assert.throws(() => tf.gather(x, tf.tensor1d([0, 2], 'int32')).dataSync(), /GatherV2: the index value 2 is not in \[0, 1\]/);
  x.dispose();
});
