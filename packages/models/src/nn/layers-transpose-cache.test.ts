import assert from 'node:assert/strict';
import { test } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { initBackend } from '@peftkit/core';
import { Conv1D, Linear, clearFrozenTransposes } from './layers.js';
import { manualSeed } from './rng.js';

// Where products take plain operands only (WebGPU, cpu, and WASM with PEFTKIT_WASM_GEMM=xnnpack), a frozen W is
// transposed once and the copy kept; the cpu backend runs the same code path here.
await initBackend('cpu');

test('a stack of Linear / Conv1D layers: frozen weights are transposed once and reused, trained ones free each transpose at once', async () => {
  const n = 6;
  const weightBytes = 256 * 256 * 4;
  for (const kind of ['conv1d', 'linear'] as const) {
    for (const trainable of [false, true]) {
      manualSeed(8);
      const layers = Array.from({ length: n }, () => (kind === 'conv1d' ? new Conv1D(256, 256) : new Linear(256, 256, false)).requiresGrad(trainable));
      const x = tf.variable(tf.randomNormal([4, 256], 0, 1, 'float32', 5));
      const xs = [x, ...layers.flatMap((l) => l.trainableParameters().map(([, v]) => v))];
      // tf.profile returns the same object each call: keep what is needed before the next.
      const step = async () => {
        const p = await tf.profile(() => {
          const { value, grads } = tf.variableGrads(() => tf.sum(layers.reduce((h: tf.Tensor, l) => tf.tanh(l.forward(h)), x)) as tf.Scalar, xs);
          tf.dispose([value, ...Object.values(grads)]);
          return tf.scalar(0);
        });
        return { peakBytes: p.peakBytes, newBytes: p.newBytes, weightTransposes: p.kernels.filter((k) => k.name === 'Transpose' && k.inputShapes[0]?.join() === '256,256').length };
      };
      const before = tf.memory().numBytes;
      const first = await step();
      const second = await step();
      if (trainable) {
        // n gradients, plus the n copies of W saved for the backward pass (tf.memory counts them
        // although they share W's buffer), plus two at a time (before the fix, Conv1D: 19 weights).
        const allowed = (2 * n + 2) * weightBytes + 64 * 1024;
        assert.ok(first.peakBytes - before < allowed, `${kind}, trainable: peak ${first.peakBytes - before} bytes above the start, allowed ${allowed}`);
      } else {
        // The first step adds the n cached transposes and nothing else that stays; the second adds none.
        assert.equal(first.newBytes, n * weightBytes + 4, `${kind}, frozen: bytes kept by the first step`);
        assert.equal(second.newBytes, 4);
      }
      assert.equal(second.weightTransposes, trainable ? n : 0, `${kind}, trainable ${trainable}: weight transposes in a second step`);
      // A changed weight (assign swaps its data) is transposed again.
      if (!trainable) {
        layers[0].weight.assign(tf.zerosLike(layers[0].weight));
        const third = await step();
        assert.equal(third.weightTransposes, 1);
      }
      clearFrozenTransposes();
      tf.dispose([x, ...layers.flatMap((l) => l.namedParameters().map(([, v]) => v))]);
    }
  }
});
