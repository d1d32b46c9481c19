import assert from 'node:assert/strict';
import { test } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { initBackend } from '@peftkit/core';
import '../../index.js'; // registers the kernels on backend ready

// [shape, begin, size]: contiguous and strided slices of rank 1 to 5 (tfjs's own wasm kernel has
// separate loops up to rank 4 and a generic one above).
const CASES: [number[], number[], number[]][] = [
  [[10], [3], [4]],
  [[4, 6], [1, 0], [2, 6]],
  [[4, 6], [1, 2], [3, 3]],
  [[2, 3, 12], [0, 0, 4], [2, 3, 4]], // GPT-2's split of c_attn into q, k, v
  [[3, 4, 5, 6], [1, 1, 2, 0], [2, 2, 3, 6]],
  [[3, 4, 5, 6], [0, 1, 0, 3], [3, 3, 5, 2]],
  [[2, 3, 2, 3, 4], [1, 0, 1, 1, 1], [1, 3, 1, 2, 3]],
  [[4, 6], [0, 0], [0, 6]],
];

async function sliceOn(backend: 'cpu' | 'wasm', shape: number[], begin: number[], size: number[], dtype: 'float32' | 'int32') {
  await initBackend(backend);
  const n = shape.reduce((a, b) => a * b);
  const x = tf.tensor(Array.from({ length: n }, (_, i) => (dtype === 'int32' ? i : i * 0.5 - 3)), shape, dtype);
  const y = tf.slice(x, begin, size);
  const out = { shape: y.shape, values: Array.from(await y.data()) };
  const parts = tf.split(x, [1, shape[shape.length - 1] - 1], -1).map((t) => Array.from(t.dataSync()));
  const rows = tf.unstack(x, 0).map((t) => ({ shape: t.shape, values: Array.from(t.dataSync()) }));
  tf.dispose([x, y]);
  return { ...out, parts, rows };
}

test('wasm Slice, split and unstack equal the cpu backend\'s for contiguous and strided slices of rank 1 to 5', async () => {
  for (const [shape, begin, size] of CASES) {
    for (const dtype of ['float32', 'int32'] as const) {
      const ref = await sliceOn('cpu', shape, begin, size, dtype);
      const got = await sliceOn('wasm', shape, begin, size, dtype);
      assert.deepEqual(got, ref, `${shape} ${begin} ${size} ${dtype}`);
    }
  }
});

test('wasm Slice does not copy its whole input: slicing a 4 MiB tensor 64 times stays fast', async () => {
  await initBackend('wasm');
  const x = tf.zeros([64, 128, 128]);
  const t0 = performance.now();
  const parts = tf.unstack(x);
  const ms = performance.now() - t0;
  tf.dispose([x, ...parts]);
  // tfjs's own kernel copied 4 MiB per slice (256 MiB here, about 300 ms); the generous bound only
  // catches a return of that copy, it is not a timing claim.
  assert.ok(ms < 150, `64 slices took ${ms.toFixed(0)} ms`);
});
