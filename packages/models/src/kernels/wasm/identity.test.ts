import assert from 'node:assert/strict';
import { test } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { initBackend } from '@peftkit/core';
import '../../index.js'; // registers the kernels on backend ready

test('wasm clone shares memory (tensors saved for gradients are not copied) and stays valid after the original is freed', async () => {
  await initBackend('wasm');
  const x = tf.tensor2d([[1, 2], [3, 4]]);
  const y = tf.clone(x);
  assert.equal(y.dataId, x.dataId);
  x.dispose();
  assert.deepEqual(y.arraySync(), [[1, 2], [3, 4]]);
  y.dispose();
  // Gradients read saved inputs through clones: d/dw sum(w²) = 2w, before and after an assign.
  const w = tf.variable(tf.tensor1d([2, 3]));
  const { grads } = tf.variableGrads(() => {
    return tf.sum(tf.square(w)) as tf.Scalar;
  }, [w]);
  assert.deepEqual(grads[w.name].arraySync(), [4, 6]);
  w.assign(tf.tensor1d([10, 10]));
  const g2 = tf.grad((v: tf.Tensor) => tf.sum(tf.square(v)))(w);
  assert.deepEqual(g2.arraySync(), [20, 20]);
});
