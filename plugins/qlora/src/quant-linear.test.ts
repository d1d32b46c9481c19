import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import { UserError, initBackend } from '@peftkit/core';
import { Conv1D, Linear, manualSeed } from '@peftkit/models';
import { quantizeLayer } from './quant-linear.js';
import { Weight4bit } from './quantized-weight.js';
import { normals } from './testing/tiny.js';

before(async () => {
  await initBackend('wasm');
});

function maxAbsDiff(a: tf.Tensor, b: tf.Tensor): number {
  return tf.tidy(() => tf.max(tf.abs(tf.sub(a, b))).dataSync()[0]);
}

test('forward and input gradient equal those of the dequantized float32 twin (1e-5)', () => {
  for (const quantType of ['nf4', 'fp4', 'int8'] as const) {
    manualSeed(11);
    const lin = new Linear(10, 6, true); // weight [6, 10]: 60 values, blocks of 32 → a partial block
    const q = quantizeLayer(lin, { quantType, blocksize: 32, doubleQuant: true }, 'layer');
    const twin = new Linear(10, 6, true);
    tf.tidy(() => {
      twin.weight.assign(q.denseWeight());
      twin.bias!.assign(q.bias!);
    });
    const x = tf.tensor(normals(2 * 3 * 10, 12), [2, 3, 10]); // [B, T, in]
    const r = tf.tensor(normals(2 * 3 * 6, 13), [2, 3, 6]);
    const loss = (m: { forward(x: tf.Tensor): tf.Tensor }) => (xx: tf.Tensor) => tf.sum(tf.mul(tf.sin(m.forward(xx)), r)) as tf.Scalar;
    const yq = q.forward(x);
    const yt = twin.forward(x);
    assert.deepEqual(yq.shape, [2, 3, 6]);
    assert.ok(maxAbsDiff(yq, yt) < 1e-5, `${quantType} forward`);
    const gq = tf.grad(loss(q))(x);
    const gt = tf.grad(loss(twin))(x);
    assert.deepEqual(gq.shape, [2, 3, 10]);
    assert.ok(maxAbsDiff(gq, gt) < 1e-5, `${quantType} dL/dx: ${maxAbsDiff(gq, gt)}`);
    assert.ok(tf.tidy(() => tf.max(tf.abs(gt)).dataSync()[0]) > 1e-3); // a real gradient, not zeros
    tf.dispose([x, r, yq, yt, gq, gt]);
    q.dispose();
    twin.dispose();
  }
});

test('no float32 copy stays resident, nothing leaks, and the frozen weight gets no gradient', () => {
  manualSeed(3);
  const lin = new Linear(64, 32, true);
  const before = tf.memory();
  const q = quantizeLayer(lin, { quantType: 'nf4', blocksize: 64, doubleQuant: true });
  const after = tf.memory();
  // The [32, 64] float weight (8192 bytes) is gone; only the bias [32] stays a tensor.
  assert.equal(after.numTensors, before.numTensors - 1);
  assert.equal(before.numBytes - after.numBytes, 32 * 64 * 4);
  assert.deepEqual(q.namedParameters().map(([n, v]) => [n, v.shape, v.trainable]), [['bias', [32], false]]);
  const w = q.weight as Weight4bit;
  assert.equal(w.packed.byteLength, 1024); // 2048 values at 4 bits
  const x = tf.variable(tf.tensor(normals(5 * 64, 1), [5, 64]));
  const n0 = tf.memory().numTensors;
  for (let i = 0; i < 3; i++) {
    const { value, grads } = tf.variableGrads(() => tf.sum(tf.square(q.forward(x))) as tf.Scalar);
    assert.deepEqual(Object.keys(grads).length, 1); // x only: nothing for the quantized weight or the frozen bias
    assert.deepEqual(grads[x.name].shape, [5, 64]);
    tf.dispose([value, ...Object.values(grads)]);
  }
  assert.equal(tf.memory().numTensors, n0, 'forward + backward leak no tensor');
  x.dispose();
  q.dispose();
});

test('the backward pass frees each dequantized weight before the next layer\'s: a stack never holds them all', async () => {
  manualSeed(5);
  const n = 6;
  const layers = Array.from({ length: n }, (_, i) => quantizeLayer(new Linear(256, 256, false), { quantType: 'nf4', blocksize: 64, doubleQuant: true }, `l${i}`));
  const weightBytes = 256 * 256 * 4;
  const x = tf.variable(tf.tensor(normals(4 * 256, 3), [4, 256])); // [N, in]
  const before = tf.memory().numBytes;
  const info = await tf.profile(() => {
    const { value, grads } = tf.variableGrads(() => tf.sum(layers.reduce((h: tf.Tensor, l) => tf.tanh(l.forward(h)), x)) as tf.Scalar, [x]);
    tf.dispose([value, ...Object.values(grads)]);
    return tf.scalar(0);
  });
  const extra = info.peakBytes - before;
  // Activations are 4 KiB a layer; each dequantized weight 256 KiB. At most two weights at a time
  // (one being made while the previous product's result is alive), never all six.
  assert.ok(extra < 2 * weightBytes + 64 * 1024, `peak ${extra} bytes above the start for ${n} layers of ${weightBytes}-byte weights`);
  assert.equal(tf.memory().numBytes, before + 4, 'only the returned scalar is left');
  x.dispose();
  for (const l of layers) l.dispose();
});

test('Conv1D (GPT-2, weight [in, out]) is quantized as Wᵀ [out, in] and comes back as a Conv1D', () => {
  manualSeed(5);
  const conv = new Conv1D(8, 12); // weight [8, 12]
  const x = tf.tensor(normals(3 * 8, 2), [3, 8]);
  const y0 = conv.forward(x);
  const wT = tf.tidy(() => conv.weight.transpose().dataSync().slice());
  const q = quantizeLayer(conv, { quantType: 'nf4', blocksize: 32, doubleQuant: false }, 'h.0.attn.c_attn');
  assert.deepEqual(q.weight.shape, [12, 8]);
  assert.equal(q.origin, 'conv1d');
  const expected = Weight4bit.quantize(Float32Array.from(wT), [12, 8], { quantType: 'nf4', blocksize: 32, doubleQuant: false });
  assert.deepEqual(Array.from((q.weight as Weight4bit).packed), Array.from(expected.packed));
  const y1 = q.forward(x);
  assert.ok(maxAbsDiff(y0, y1) < 0.05); // 4-bit error
  const back = q.toFloatModule();
  assert.ok(back instanceof Conv1D);
  assert.deepEqual(back.weight.shape, [8, 12]);
  assert.ok(maxAbsDiff(back.forward(x), y1) < 1e-6);
  tf.dispose([x, y0, y1]);
  back.dispose();
  q.dispose();
});

test('adding a float delta into packed storage is refused; materialize holds a float copy that takes it and is dropped exactly', () => {
  manualSeed(9);
  const q = quantizeLayer(new Linear(6, 4, false), { quantType: 'nf4', blocksize: 32 }, 'blk.q_proj');
  const packed = Array.from((q.weight as Weight4bit).packed);
  const delta = tf.fill([4, 6], 0.01) as tf.Tensor2D;
  assert.throws(() => q.addToWeight(delta), (e: unknown) => e instanceof UserError && /cannot add a float update to blk\.q_proj: its weight is stored as nf4 codes/.test(e.message) && /dequantize/.test(e.details.hint ?? ''));
  const w0 = q.denseWeight();
  q.materialize();
  q.addToWeight(delta);
  const w1 = q.denseWeight();
  assert.ok(Math.abs(maxAbsDiff(w1, w0) - 0.01) < 1e-6);
  q.dematerialize();
  const w2 = q.denseWeight();
  assert.equal(maxAbsDiff(w2, w0), 0);
  assert.deepEqual(Array.from((q.weight as Weight4bit).packed), packed);
  tf.dispose([delta, w0, w1, w2]);
  q.dispose();
});
