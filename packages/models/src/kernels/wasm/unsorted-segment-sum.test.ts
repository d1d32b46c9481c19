import assert from 'node:assert/strict';
import { test } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { initBackend } from '@peftkit/core';
import { Embedding, manualSeed, registerKernels } from '../../index.js';

const VOCAB = 11;
const DIM = 5;
const IDS = [[3, 1, 3, 0], [10, 3, 1, 7]]; // repeats: row 3 is read three times
const R = Array.from({ length: 2 * 4 * DIM }, (_, i) => Math.sin(i + 1));

/** d/dW of sum(Embedding(ids) · R), on whatever backend is active. */
function embeddingGrad(): { grad: number[][]; loss: number } {
  manualSeed(5);
  const emb = new Embedding(VOCAB, DIM);
  const ids = tf.tensor2d(IDS, [2, 4], 'int32');
  const r = tf.tensor3d(R, [2, 4, DIM]);
  const { value, grads } = tf.variableGrads(() => tf.sum(tf.mul(emb.forward(ids), r)) as tf.Scalar, [emb.weight]);
  const out = { grad: grads[emb.weight.name].arraySync() as number[][], loss: value.dataSync()[0] };
  tf.dispose([ids, r, value, grads[emb.weight.name]]);
  emb.dispose();
  return out;
}

test('the gather gradient trains an Embedding on wasm exactly as on cpu', async () => {
  await initBackend('cpu');
  const cpu = embeddingGrad();
  await initBackend('wasm'); // the package's onBackendReady hook registers the kernel here
  assert.ok(tf.getKernel('UnsortedSegmentSum', 'wasm'), 'kernel registered for wasm');
  const wasm = embeddingGrad();
  assert.equal(tf.getBackend(), 'wasm');
  assert.ok(Math.abs(wasm.loss - cpu.loss) < 1e-5);
  for (let v = 0; v < VOCAB; v++) for (let d = 0; d < DIM; d++) assert.ok(Math.abs(wasm.grad[v][d] - cpu.grad[v][d]) < 1e-5, `row ${v} col ${d}`);
  // And against the definition: row v collects R at every position whose id is v.
  const expected = Array.from({ length: VOCAB }, () => new Array(DIM).fill(0));
  IDS.flat().forEach((id, pos) => {
    for (let d = 0; d < DIM; d++) expected[id][d] += R[pos * DIM + d];
  });
  for (let v = 0; v < VOCAB; v++) for (let d = 0; d < DIM; d++) assert.ok(Math.abs(wasm.grad[v][d] - expected[v][d]) < 1e-5);
  assert.deepEqual(wasm.grad[2], new Array(DIM).fill(0), 'an unread row gets no gradient');
});

test('unsortedSegmentSum on wasm: 2-D segment ids, ids out of range dropped, int32 values', async () => {
  await initBackend('wasm');
  registerKernels('wasm'); // idempotent
  const x = tf.tensor3d([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12], [2, 3, 2]);
  const seg = tf.tensor2d([[0, 2, -1], [2, 5, 0]], [2, 3], 'int32');
  const y = tf.unsortedSegmentSum(x, seg as unknown as tf.Tensor1D, 3); // tfjs types say 1-D; the op, like TF's, takes a prefix of x's shape
  assert.deepEqual(y.shape, [3, 2]);
  assert.deepEqual(y.arraySync(), [[1 + 11, 2 + 12], [0, 0], [3 + 7, 4 + 8]]);
  const yi = tf.unsortedSegmentSum(tf.tensor1d([5, 6, 7], 'int32'), tf.tensor1d([1, 1, 0], 'int32'), 2);
  assert.equal(yi.dtype, 'int32');
  assert.deepEqual(yi.arraySync(), [7, 11]);
  tf.dispose([x, seg, y, yi]);
});
