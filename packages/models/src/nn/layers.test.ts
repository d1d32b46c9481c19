import assert from 'node:assert/strict';
import { test } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { initBackend } from '@peftkit/core';
import { Conv1D, LayerNorm, Linear, RMSNorm, clearFrozenTransposes, matMulLast } from './layers.js';
import { Module, ModuleList, StateDictError } from './module.js';
import { manualSeed } from './rng.js';
import { productsTakeTransposes } from '../kernels/matmul.js';

await initBackend('wasm');

function close(a: tf.Tensor, b: tf.Tensor, tol = 1e-5) {
  const d = tf.max(tf.abs(tf.sub(a, b))).dataSync()[0];
  assert.ok(d < tol, `max abs diff ${d}`);
}

test('matMulLast and its hand-written gradient agree with tfjs matMul and autodiff', () => {
  manualSeed(1);
  const x = tf.randomNormal([2, 3, 5], 0, 1, 'float32', 1);
  for (const transposeW of [true, false]) {
    const w = tf.randomNormal(transposeW ? [4, 5] : [5, 4], 0, 1, 'float32', 2);
    const ref = (xx: tf.Tensor, ww: tf.Tensor) => tf.matMul(xx.reshape([6, 5]) as tf.Tensor2D, ww as tf.Tensor2D, false, transposeW).reshape([2, 3, 4]);
    close(matMulLast(x, w, transposeW), ref(x, w));
    const loss = (f: typeof ref) => (xx: tf.Tensor, ww: tf.Tensor) => tf.sum(tf.square(f(xx, ww)));
    const [gx, gw] = tf.grads(loss((a, b) => matMulLast(a, b, transposeW)))([x, w]);
    const [rx, rw] = tf.grads(loss(ref))([x, w]);
    close(gx, rx, 1e-4);
    close(gw, rw, 1e-4);
  }
});

test('dW of x·W (in > out: transposes dy and the result) and of x·Wᵀ equal xᵀ·dy and dyᵀ·x computed in float64, and transpose the fewer elements', async () => {
  // [rows, in, out]: in < out (xᵀ is the smaller transpose) and in = 4·out (GPT-2's c_proj: (dyᵀ·x)ᵀ is).
  for (const [rows, inF, out] of [[6, 5, 8], [40, 12, 3]]) {
    const xv = Float32Array.from({ length: rows * inF }, (_, i) => Math.sin(i * 0.7));
    const rv = Float32Array.from({ length: rows * out }, (_, i) => Math.cos(i * 0.3));
    // loss = sum(y ⊙ r), so dy = r and dW = xᵀ·r ([in, out]).
    const exact = Array.from({ length: inF * out }, (_, k) => {
      const [i, o] = [Math.floor(k / out), k % out];
      let s = 0;
      for (let n = 0; n < rows; n++) s += xv[n * inF + i] * rv[n * out + o];
      return s;
    });
    for (const transposeW of [false, true]) {
      const x = tf.tensor2d(xv, [rows, inF]);
      const r = tf.tensor2d(rv, [rows, out]);
      const w = tf.variable(tf.zeros(transposeW ? [out, inF] : [inF, out]));
      let g: tf.Tensor | undefined;
      const prof = await tf.profile(() => {
        g = tf.variableGrads(() => tf.sum(tf.mul(matMulLast(x, w, transposeW), r)) as tf.Scalar, [w]).grads[w.name];
      });
      const gv = (transposeW ? tf.transpose(g!) : g!).dataSync(); // x·Wᵀ's dW is [out, in]
      exact.forEach((e, k) => assert.ok(Math.abs(gv[k] - e) <= 1e-5 * (1 + Math.abs(e)), `${rows}x${inF}x${out} transposeW ${transposeW} [${k}]: ${gv[k]} vs ${e}`));
      // Elements moved by transposes: the forward pass of x·Wᵀ transposes W (in·out), the backward pass's dx = dy·Wᵀ
      // too, dW the fewer elements; none where peftkit's GEMM reads the operands in place (WASM with peftkit's GEMM).
      const moved = prof.kernels.filter((k) => k.name === 'Transpose').reduce((n, k) => n + k.inputShapes[0].reduce((a, b) => a * b, 1), 0);
      const inPlace = productsTakeTransposes();
      const forward = transposeW && !inPlace ? inF * out : 0;
      const backwardDx = !transposeW && !inPlace ? inF * out : 0; // dx = dy·Wᵀ
      const dW = inPlace ? 0 : transposeW ? Math.min(rows * out, rows * inF + inF * out) : Math.min(rows * inF, rows * out + inF * out);
      assert.equal(moved, forward + backwardDx + dW, `${rows}x${inF}x${out} transposeW ${transposeW}`);
      tf.dispose([x, r, w, g!]);
    }
  }
});

test('with a frozen weight, outputs and the input\'s gradient are unchanged (many rows and few)', () => {
  for (const rows of [3, 40]) {
    const x = tf.randomNormal([rows, 5], 0, 1, 'float32', 3);
    for (const transposeW of [true, false]) {
      const init = tf.randomNormal(transposeW ? [4, 5] : [5, 4], 0, 1, 'float32', 4);
      const frozen = tf.variable(init, false);
      const live = tf.variable(init, true);
      close(matMulLast(x, frozen, transposeW), matMulLast(x, live, transposeW));
      const gFrozen = tf.grad((xx: tf.Tensor) => tf.sum(tf.square(matMulLast(xx, frozen, transposeW))))(x);
      const gLive = tf.grad((xx: tf.Tensor) => tf.sum(tf.square(matMulLast(xx, live, transposeW))))(x);
      close(gFrozen, gLive, 1e-4);
    }
  }
});

test('on WASM with peftkit\'s GEMM a stack of frozen layers keeps no transposed weights: every product reads W in place, 4 rows too', async () => {
  assert.ok(productsTakeTransposes(), 'the default WASM backend runs peftkit\'s GEMM');
  for (const kind of ['conv1d', 'linear'] as const) {
    manualSeed(8);
    const layers = Array.from({ length: 6 }, () => (kind === 'conv1d' ? new Conv1D(256, 256) : new Linear(256, 256, false)).requiresGrad(false));
    const x = tf.variable(tf.randomNormal([4, 256], 0, 1, 'float32', 5));
    const before = tf.memory().numBytes;
    const p = await tf.profile(() => {
      const { value, grads } = tf.variableGrads(() => tf.sum(layers.reduce((h: tf.Tensor, l) => tf.tanh(l.forward(h)), x)) as tf.Scalar, [x]);
      tf.dispose([value, ...Object.values(grads)]);
      return tf.scalar(0);
    });
    assert.equal(p.newBytes, 4, `${kind}: bytes kept by a step (the returned scalar only)`);
    assert.equal(p.kernels.filter((k) => k.name === 'Transpose').length, 0, `${kind}: transposes in a step`);
    assert.equal(tf.memory().numBytes - before, 4);
    tf.dispose([x, ...layers.flatMap((l) => l.namedParameters().map(([, v]) => v))]);
  }
});

test('Linear is x Wᵀ + b with PyTorch layout; Conv1D is x W + b', () => {
  const lin = new Linear(3, 2);
  lin.weight.assign(tf.tensor2d([[1, 2, 3], [4, 5, 6]]));
  lin.bias!.assign(tf.tensor1d([0.5, -1]));
  assert.deepEqual([...lin.forward(tf.tensor2d([[1, 0, -1]])).dataSync()], [1 - 3 + 0.5, 4 - 6 - 1]);
  const conv = new Conv1D(3, 2);
  conv.weight.assign(tf.tensor2d([[1, 4], [2, 5], [3, 6]]));
  assert.deepEqual([...conv.forward(tf.tensor2d([[1, 0, -1]])).dataSync()], [-2, -2]);
});

test('LayerNorm and RMSNorm normalise the last axis', () => {
  const x = tf.tensor2d([[1, 2, 3, 4]]);
  const ln = new LayerNorm(4, 0).forward(x).dataSync();
  const sd = Math.sqrt(1.25);
  [-1.5, -0.5, 0.5, 1.5].forEach((v, i) => assert.ok(Math.abs(ln[i] - v / sd) < 1e-5));
  const rms = new RMSNorm(4, 0).forward(x).dataSync();
  const r = Math.sqrt((1 + 4 + 9 + 16) / 4);
  [1, 2, 3, 4].forEach((v, i) => assert.ok(Math.abs(rms[i] - v / r) < 1e-5));
});

class Block extends Module {
  fc = this.registerModule('fc', new Linear(2, 2));
}
class Net extends Module {
  h = this.registerModule('h', new ModuleList([new Block(), new Block()]));
  head = this.registerModule('head', new Linear(2, 1, false));
}

test('HF-style names, setSubmodule keeps fields in step, strict loadStateDict names problems', () => {
  const net = new Net();
  assert.deepEqual(net.namedParameters().map(([n]) => n), ['h.0.fc.weight', 'h.0.fc.bias', 'h.1.fc.weight', 'h.1.fc.bias', 'head.weight']);
  const replacement = new Linear(2, 2);
  net.setSubmodule('h.1.fc', replacement);
  assert.equal(net.h.at(1).fc, replacement);
  const sd = new Map(net.stateDict());
  sd.delete('head.weight');
  sd.set('h.0.fc.weight', tf.zeros([3, 2]));
  sd.set('extra', tf.zeros([1]));
  assert.throws(() => net.loadStateDict(sd), (e: unknown) => {
    assert.ok(e instanceof StateDictError);
    assert.deepEqual(e.report.missing, ['head.weight']);
    assert.deepEqual(e.report.unexpected, ['extra']);
    assert.match(e.report.mismatched[0], /h\.0\.fc\.weight: expected \[2, 2\], got \[3, 2\]/);
    return true;
  });
});

test('frozen weights bigger than the activations are not copied: m·Wᵀ is computed as (W·mᵀ)ᵀ, with the same values and gradient', async () => {
  for (const kind of ['conv1d', 'linear'] as const) {
    manualSeed(9);
    const layer = (kind === 'conv1d' ? new Conv1D(256, 256) : new Linear(256, 256, false)).requiresGrad(false);
    const x = tf.randomNormal([32, 256], 0, 1, 'float32', 6); // 256·256 > 32·(256 + 256): no cache
    const w = layer.weight;
    const f = (t: tf.Tensor) => tf.sum(tf.mul(layer.forward(t), tf.range(0, 256).reshape([1, 256])));
    const p = await tf.profile(() => tf.grad(f)(x));
    const kept = p.newBytes;
    const gx = tf.grad(f)(x);
    assert.equal(kept, 32 * 256 * 4, `${kind}: only the gradient stays`);
    // The reference: the same products with tfjs's own matMul and transpose flags.
    const dy = tf.tile(tf.range(0, 256).reshape([1, 256]), [32, 1]);
    const ref = kind === 'conv1d' ? tf.matMul(dy, w, false, true) : tf.matMul(dy, w);
    close(gx, ref, 1e-3);
    close(layer.forward(x), kind === 'conv1d' ? tf.matMul(x, w) : tf.matMul(x, w, false, true), 1e-4);
    tf.dispose([x, gx, dy, ref, ...layer.namedParameters().map(([, v]) => v)]);
  }
});
