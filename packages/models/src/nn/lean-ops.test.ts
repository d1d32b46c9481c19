/**
 * The memory-lean ops (nn/activations.ts, nn/layers.ts `layerNorm` / `rmsNorm`, kernels/attention.ts
 * `recomputedAttention`, nn/layers.ts `matMulLast` with its bias, `reshapeUnsaved`, `residualAdd`) against the composed tfjs ops they replace: the same values and gradients at odd
 * shapes, on the cpu and wasm backends, and fewer buffers kept while a gradient is recorded.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { initBackend } from '@peftkit/core';
import '../index.js'; // registers peftkit's kernels (PeftkitDropout) when a backend is ready
import { activation, gatedActivation } from './activations.js';
import { layerNorm, matMulLast, reshapeUnsaved, residualAdd, rmsNorm } from './layers.js';
import { recomputedAttention } from '../kernels/attention.js';
import { attentionReference } from '../kernels/reference/attention.js';
import { seededDropout } from '../kernels/dropout.js';
import { MASKED } from '../architectures/attention.js';

const BACKENDS = ['cpu', 'wasm'] as const;

/** max |a − b| ≤ tol · (1 + max |b|). */
function close(a: tf.Tensor, b: tf.Tensor, tol: number, what: string) {
  assert.deepEqual(a.shape, b.shape, `${what}: shape`);
  const d = tf.max(tf.abs(tf.sub(a, b))).dataSync()[0]!;
  const scale = 1 + tf.max(tf.abs(b)).dataSync()[0]!;
  assert.ok(d <= tol * scale, `${what}: max abs diff ${d} (scale ${scale})`);
}

/** Σ (f(...) · w) with a fixed random w, so every output element gets its own upstream gradient. */
function weighted(f: (...xs: tf.Tensor[]) => tf.Tensor, seed: number): (...xs: tf.Tensor[]) => tf.Scalar {
  return (...xs) => {
    const y = f(...xs);
    return tf.sum(tf.mul(y, tf.randomNormal(y.shape, 0, 1, 'float32', seed))) as tf.Scalar;
  };
}

/** Values and gradients (tf.grads over `inputs`) of `lean` and `composed` agree. */
function sameValueAndGrads(lean: (...xs: tf.Tensor[]) => tf.Tensor, composed: (...xs: tf.Tensor[]) => tf.Tensor, inputs: tf.Tensor[], tol: number, what: string, valueTol = 0) {
  tf.tidy(() => {
    // Values with the tape on, so that the custom op itself runs.
    const [yl] = tf.tidy(() => { let y!: tf.Tensor; tf.grads((...xs: tf.Tensor[]) => { y = tf.keep(lean(...xs)); return tf.sum(y) as tf.Scalar; })(inputs); return [y]; });
    const yc = composed(...inputs);
    if (valueTol > 0) {
      // The op runs a kernel of its own (PeftkitActivation): within its rounding of the composed ops.
      close(yl!, yc, valueTol, `${what}: value`);
      close(lean(...inputs), yc, valueTol, `${what}: value without a gradient`);
    } else {
      // Bit for bit: the lean ops run the composed ops in their forward.
      assert.deepEqual(yl!.dataSync(), yc.dataSync(), `${what}: value`);
      assert.deepEqual(lean(...inputs).dataSync(), yc.dataSync(), `${what}: value without a gradient`);
    }
    const gl = tf.grads(weighted(lean, 7))(inputs);
    const gc = tf.grads(weighted(composed, 7))(inputs);
    gl.forEach((g, i) => close(g, gc[i]!, tol, `${what}: gradient of input ${i}`));
  });
}

/** Buffers (backend data ids) that `f` adds and that stay alive while a gradient is being recorded. */
function buffersKept(f: (...xs: tf.Tensor[]) => tf.Tensor, inputs: tf.Tensor[]): number {
  let kept = 0;
  tf.tidy(() => {
    tf.grads((...xs: tf.Tensor[]) => {
      const before = tf.engine().backend.numDataIds();
      const y = f(...xs);
      kept = tf.engine().backend.numDataIds() - before;
      return tf.sum(y) as tf.Scalar;
    })(inputs);
  });
  return kept;
}

const composedAct: Record<string, (x: tf.Tensor) => tf.Tensor> = {
  gelu: (x) => tf.mul(tf.mul(x, 0.5), tf.add(1, tf.erf(tf.mul(x, Math.SQRT1_2)))),
  gelu_new: (x) => tf.mul(x, tf.sigmoid(tf.mul(x, tf.add(2 * Math.sqrt(2 / Math.PI), tf.mul(2 * 0.044715 * Math.sqrt(2 / Math.PI), tf.mul(x, x)))))),
  silu: (x) => tf.mul(x, tf.sigmoid(x)),
};

for (const backend of BACKENDS) {
  test(`${backend}: gelu, gelu_new and silu keep only their input, with the composed ops' values and gradients`, async () => {
    await initBackend(backend);
    const x = tf.mul(tf.randomNormal([3, 5, 7], 0, 1, 'float32', 1), 3); // reaches the tails
    // On wasm, gelu_new and silu run PeftkitActivation (kernels/activation.ts): values within 5e-7, not bit for bit.
    const valueTol = (name: string) => (backend === 'wasm' && name !== 'gelu' ? 5e-7 : 0);
    for (const name of ['gelu', 'gelu_new', 'silu']) {
      sameValueAndGrads(activation(name), composedAct[name]!, [x], 2e-6, name, valueTol(name));
      assert.equal(buffersKept(activation(name), [x]), 1, `${name}: only the output is a new buffer`);
      assert.ok(buffersKept(composedAct[name]!, [x]) >= 2, `${name}: the composed form keeps its intermediates (silu: σ(x) too)`);
    }
    const up = tf.randomNormal([3, 5, 7], 0, 1, 'float32', 2);
    for (const name of ['silu', 'gelu']) {
      const composed = (g: tf.Tensor, u: tf.Tensor) => tf.mul(composedAct[name]!(g), u);
      sameValueAndGrads(gatedActivation(name), composed, [x, up], 2e-6, `gated ${name}`, valueTol(name));
      assert.equal(buffersKept(gatedActivation(name), [x, up]), 1, `gated ${name}: only the output is a new buffer`);
    }
    // relu has no lean form; the gated op falls back to the composed ops.
    sameValueAndGrads(gatedActivation('relu'), (g, u) => tf.mul(tf.relu(g), u), [x, up], 1e-6, 'gated relu');
  });

  test(`${backend}: layerNorm and rmsNorm keep x and per-row statistics, with the composed ops' values and gradients`, async () => {
    await initBackend(backend);
    const x = tf.add(tf.mul(tf.randomNormal([2, 3, 13], 0, 1, 'float32', 3), 2), 0.7);
    const w = tf.randomNormal([13], 1, 0.3, 'float32', 4);
    const b = tf.randomNormal([13], 0, 0.3, 'float32', 5);
    const eps = 1e-5;
    const composedLn = (xx: tf.Tensor, ww: tf.Tensor, bb: tf.Tensor) => {
      const { mean, variance } = tf.moments(xx, -1, true);
      return tf.add(tf.mul(tf.div(tf.sub(xx, mean), tf.sqrt(tf.add(variance, eps))), ww), bb);
    };
    const composedRms = (xx: tf.Tensor, ww: tf.Tensor) => tf.mul(tf.mul(xx, tf.rsqrt(tf.add(tf.mean(tf.square(xx), -1, true), 1e-6))), ww);
    // On wasm the norms run PeftkitNorm (kernels/norm.ts): values within float32 rounding, not bit for bit.
    const valueTol = backend === 'wasm' ? 1e-6 : 0;
    sameValueAndGrads((xx, ww, bb) => layerNorm(xx, ww!, bb!, eps), composedLn as never, [x, w, b], 1e-5, 'layerNorm', valueTol);
    sameValueAndGrads((xx, ww) => rmsNorm(xx, ww!, 1e-6), composedRms as never, [x, w], 1e-5, 'rmsNorm', valueTol);
    assert.equal(buffersKept((xx, ww, bb) => layerNorm(xx, ww!, bb!, eps), [x, w, b]), 3, 'layerNorm: output, mean, std');
    assert.equal(buffersKept((xx, ww) => rmsNorm(xx, ww!, 1e-6), [x, w]), 2, 'rmsNorm: output, r');
    assert.ok(buffersKept(composedLn as never, [x, w, b]) >= 6);
    // A frozen variable weight: x's gradient unchanged, the weight's is zeros and never read.
    const frozenW = tf.variable(w, false);
    const frozenB = tf.variable(b, false);
    const gx = tf.grad((xx: tf.Tensor) => weighted((a) => layerNorm(a, frozenW, frozenB, eps), 9)(xx))(x);
    const gxRef = tf.grad((xx: tf.Tensor) => weighted((a) => composedLn(a, w, b), 9)(xx))(x);
    close(gx, gxRef, 1e-5, 'layerNorm with a frozen weight: gradient of x');
    const gxRms = tf.grad((xx: tf.Tensor) => weighted((a) => rmsNorm(a, frozenW, 1e-6), 9)(xx))(x);
    close(gxRms, tf.grad((xx: tf.Tensor) => weighted((a) => composedRms(a, w), 9)(xx))(x), 1e-5, 'rmsNorm with a frozen weight: gradient of x');
    tf.dispose([frozenW, frozenB]);
  });

  test(`${backend}: matMulLast adds the bias inside its op: the composed values and gradients, the product without bias not kept`, async () => {
    await initBackend(backend);
    const x = tf.randomNormal([2, 3, 5], 0, 1, 'float32', 31);
    for (const transposeW of [true, false]) {
      const w = tf.randomNormal(transposeW ? [4, 5] : [5, 4], 0, 1, 'float32', 32);
      const b = tf.randomNormal([4], 0, 1, 'float32', 33);
      const composed = (xx: tf.Tensor, ww: tf.Tensor, bb: tf.Tensor) => tf.add(tf.matMul(xx.reshape([6, 5]) as tf.Tensor2D, ww as tf.Tensor2D, false, transposeW).reshape([2, 3, 4]), bb);
      const lean = (xx: tf.Tensor, ww: tf.Tensor, bb: tf.Tensor) => matMulLast(xx, ww, transposeW, bb);
      const tol = 1e-5;
      const check = (a: tf.Tensor, c: tf.Tensor, what: string) => close(a, c, tol, `transposeW ${transposeW}: ${what}`);
      check(lean(x, w, b), composed(x, w, b), 'value');
      const gl = tf.grads(weighted(lean as never, 5))([x, w, b]);
      const gc = tf.grads(weighted(composed as never, 5))([x, w, b]);
      gl.forEach((g, i) => check(g, gc[i]!, `gradient of input ${i}`));
      assert.equal(buffersKept(lean as never, [x, w, b]), 1, 'only the output is a new buffer');
      // Frozen weight, trainable bias (and a frozen bias): the gradients that are asked for.
      const fw = tf.variable(w, false);
      const fb = tf.variable(b, false);
      const [gx, gb] = tf.grads(weighted((xx, bb) => matMulLast(xx, fw, transposeW, bb), 5))([x, b]);
      check(gx!, gc[0]!, 'frozen weight: gradient of x');
      check(gb!, gc[2]!, 'frozen weight: gradient of the bias');
      check(tf.grad(weighted((xx) => matMulLast(xx, fw, transposeW, fb), 5))(x), gc[0]!, 'frozen weight and bias: gradient of x');
      tf.dispose([fw, fb]);
    }
  });

  test(`${backend}: reshapeUnsaved and residualAdd save nothing, with tf.reshape's and tf.add's values and gradients`, async () => {
    await initBackend(backend);
    const a = tf.randomNormal([2, 3, 6], 0, 1, 'float32', 41);
    const b = tf.randomNormal([2, 3, 6], 0, 1, 'float32', 42);
    // A product after the op, so that each gradient depends on the values that flow through it.
    const m = tf.randomNormal([6, 5], 0, 1, 'float32', 43);
    const after = (t: tf.Tensor) => tf.matMul(t.reshape([-1, 6]) as tf.Tensor2D, m as tf.Tensor2D);
    sameValueAndGrads((x) => after(reshapeUnsaved(x, [3, -1, 6])), (x) => after(tf.reshape(x, [3, -1, 6])), [a], 1e-6, 'reshapeUnsaved');
    sameValueAndGrads((x, y) => after(residualAdd(x, y!)), (x, y) => after(tf.add(x, y!)), [a, b], 1e-6, 'residualAdd');
    // Saved clones share their input's buffer: count the tensors the tape keeps instead.
    const keptTensors = (f: () => tf.Tensor) => {
      let n = 0;
      tf.tidy(() => tf.grads(() => { const before = tf.memory().numTensors; const y = f(); n = tf.memory().numTensors - before; return tf.sum(y) as tf.Scalar; })([a]));
      return n;
    };
    assert.equal(keptTensors(() => reshapeUnsaved(a, [6, 6])), 1, 'reshapeUnsaved: only the output');
    assert.equal(keptTensors(() => tf.reshape(a, [6, 6])), 2, 'tf.reshape keeps a clone of its input');
    assert.equal(keptTensors(() => residualAdd(a, b)), 1, 'residualAdd: only the output');
    assert.equal(keptTensors(() => tf.add(a, b)), 3, 'tf.add keeps clones of both inputs');
    assert.throws(() => residualAdd(a, tf.zeros([3, 6])), /shapes \[2, 3, 6\] and \[3, 6\] differ/);
  });

  test(`${backend}: recomputedAttention gives the composed path's values and gradients (GQA, padding, a row with no visible key, S > T, dropout)`, async () => {
    await initBackend(backend);
    const [B, H, KVH, T, S, D] = [2, 6, 3, 5, 7, 3];
    const q = tf.randomNormal([B, H, T, D], 0, 1, 'float32', 11) as tf.Tensor4D;
    const k = tf.randomNormal([B, KVH, S, D], 0, 1, 'float32', 12) as tf.Tensor4D;
    const v = tf.randomNormal([B, KVH, S, D], 0, 1, 'float32', 13) as tf.Tensor4D;
    // Causal over S = P + T with P = 2, row 1 padded at its first three keys, and a query row whose keys are all masked.
    const vis = new Float32Array(B * T * S);
    for (let bi = 0; bi < B; bi++) for (let i = 0; i < T; i++) for (let j = 0; j < S; j++) {
      vis[(bi * T + i) * S + j] = j <= 2 + i && !(bi === 1 && j < 3) && !(bi === 1 && i === 0) ? 1 : 0;
    }
    const bias = tf.mul(tf.sub(1, tf.tensor4d(vis, [B, 1, T, S])), MASKED) as tf.Tensor4D;
    const scale = 1 / Math.sqrt(D);
    for (const [label, b, drop] of [
      ['no mask', undefined, undefined],
      ['mask', bias, undefined],
      ['mask and dropout', bias, { rate: 0.3, seed0: 0x9e3779b9, seed1: 17 }],
    ] as const) {
      const composed = (qq: tf.Tensor, kk: tf.Tensor, vv: tf.Tensor) =>
        attentionReference(qq as tf.Tensor4D, kk as tf.Tensor4D, vv as tf.Tensor4D, scale, b, drop && ((p) => seededDropout(p, drop.rate, drop.seed0, drop.seed1)));
      const gc = tf.grads(weighted((...xs) => composed(xs[0]!, xs[1]!, xs[2]!), 21))([q, k, v]);
      // The softmax recomputed in the backward pass (keep at most 0 bytes), and kept (these shapes are small).
      for (const keepBytes of [0, undefined]) {
        const what = `${label}, ${keepBytes === 0 ? 'recomputed' : 'kept'}`;
        const lean = (qq: tf.Tensor, kk: tf.Tensor, vv: tf.Tensor) => recomputedAttention(qq as tf.Tensor4D, kk as tf.Tensor4D, vv as tf.Tensor4D, scale, b, drop, keepBytes);
        const valueOf = (f: typeof lean) => tf.tidy(() => { let y!: tf.Tensor; tf.grads((...xs: tf.Tensor[]) => { y = tf.keep(f(xs[0]!, xs[1]!, xs[2]!)); return tf.sum(y) as tf.Scalar; })([q, k, v]); return y; });
        assert.deepEqual(valueOf(lean).dataSync(), composed(q, k, v).dataSync(), `${what}: value, bit for bit`);
        const gl = tf.grads(weighted((...xs) => lean(xs[0]!, xs[1]!, xs[2]!), 21))([q, k, v]);
        ['q', 'k', 'v'].forEach((n, i) => close(gl[i]!, gc[i]!, 2e-5, `${what}: d${n}`));
        // Kept: the output (q, k, v are the inputs), and the softmax where it is small; the composed path kept the
        // scores, probabilities and more, [B, H, T, S] each.
        assert.equal(buffersKept((...xs) => lean(xs[0]!, xs[1]!, xs[2]!), [q, k, v]), keepBytes === 0 ? 1 : 2, `${what}: buffers kept`);
      }
      assert.ok(buffersKept((...xs) => composed(xs[0]!, xs[1]!, xs[2]!), [q, k, v]) >= 4);
    }
  });
}
