import assert from 'node:assert/strict';
import { before, test } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { initBackend } from '@peftkit/core';
import { Conv1D, Linear, manualSeed } from '@peftkit/models';
import { Ia3Layer, UNMERGE_EPSILON } from './layer.js';

before(async () => {
  await initBackend('wasm');
  manualSeed(5);
});

const x = [[1, 2, 3], [-1, 0.5, 2]]; // [2, in 3]
const rows = (t: tf.Tensor) => t.arraySync() as number[][];
/** y = x·M + b with M [in, out] in plain numbers. */
const mm = (xs: number[][], m: number[][], b: number[]) => xs.map((r) => b.map((bo, o) => r.reduce((s, xi, i) => s + xi * m[i][o], bo)));
const close = (a: number[][], b: number[][], tol = 1e-5) => a.forEach((r, i) => r.forEach((v, j) => assert.ok(Math.abs(v - b[i][j]) < tol, `[${i}][${j}]: ${v} vs ${b[i][j]}`)));
const transpose = (m: number[][]) => m[0].map((_, j) => m.map((r) => r[j]));

/** A Linear (weight [out 2, in 3]) or a Conv1D (weight [in 3, out 2]) and its weight as [in, out] numbers. */
function base(kind: 'linear' | 'conv1d') {
  const layer = kind === 'linear' ? new Linear(3, 2) : new Conv1D(3, 2);
  if (kind === 'conv1d') layer.bias!.assign(tf.tensor1d([0.3, -0.2]));
  const w = rows(layer.weight);
  return { layer, m: kind === 'linear' ? transpose(w) : w, b: layer.bias!.arraySync() as number[] };
}

for (const kind of ['linear', 'conv1d'] as const) {
  test(`${kind}: output scaling y = (x W + b) ⊙ l, l [out, 1]; merge scales W's output axis and b; unmerge divides by l + 1e-8`, () => {
    const { layer, m, b } = base(kind);
    const ia3 = new Ia3Layer(layer, false, 'proj');
    ia3.addAdapter('default', true);
    const l = ia3.vector('default');
    assert.deepEqual(l.shape, [2, 1]);
    close(rows(ia3.forward(tf.tensor2d(x))), mm(x, m, b), 1e-6); // l = 1: the base
    const lv = [2, -0.5];
    l.assign(tf.tensor2d(lv, [2, 1]));
    const want = mm(x, m, b).map((r) => r.map((v, o) => v * lv[o]));
    close(rows(ia3.forward(tf.tensor2d(x))), want);
    ia3.merge('default');
    assert.deepEqual(ia3.mergedAdapters(), ['default']);
    close(rows(layer.forward(tf.tensor2d(x))), want); // the base layer alone now carries l
    close(rows(ia3.forward(tf.tensor2d(x))), want); // and the wrapper does not apply it twice
    ia3.unmerge('default');
    // HF divides by l + 1e-8: W·l / (l + 1e-8).
    const expectW = m.map((r) => r.map((v, o) => (v * lv[o]) / (lv[o] + UNMERGE_EPSILON)));
    const now = kind === 'linear' ? transpose(rows(layer.weight)) : rows(layer.weight);
    close(now, expectW, 1e-6);
    close(rows(ia3.forward(tf.tensor2d(x))), want);
  });

  test(`${kind}: feed-forward scaling y = (x ⊙ l) W + b, l [1, in]; merge scales W's input axis, not b`, () => {
    const { layer, m, b } = base(kind);
    const ia3 = new Ia3Layer(layer, true);
    ia3.addAdapter('default', true);
    const l = ia3.vector('default');
    assert.deepEqual(l.shape, [1, 3]);
    const lv = [0.5, 3, -1];
    l.assign(tf.tensor2d([lv]));
    const want = mm(x.map((r) => r.map((v, i) => v * lv[i])), m, b);
    close(rows(ia3.forward(tf.tensor2d(x))), want);
    ia3.merge('default');
    assert.deepEqual(layer.bias!.arraySync(), b, 'the bias is not scaled for feed-forward layers');
    const merged = kind === 'linear' ? transpose(rows(layer.weight)) : rows(layer.weight);
    close(merged, m.map((r, i) => r.map((v) => v * lv[i])));
    close(rows(ia3.forward(tf.tensor2d(x))), want);
  });
}

test('two enabled adapters multiply their vectors; disabling one drops its factor; a disabled merged adapter is unmerged', () => {
  const { layer, m, b } = base('linear');
  const ia3 = new Ia3Layer(layer, false);
  ia3.addAdapter('a', true);
  ia3.addAdapter('b', true);
  ia3.vector('a').assign(tf.tensor2d([2, 3], [2, 1]));
  ia3.vector('b').assign(tf.tensor2d([5, 7], [2, 1]));
  const y = mm(x, m, b);
  close(rows(ia3.forward(tf.tensor2d(x))), y.map((r) => [r[0] * 10, r[1] * 21]));
  ia3.setEnabled('b', false);
  close(rows(ia3.forward(tf.tensor2d(x))), y.map((r) => [r[0] * 2, r[1] * 3]));
  ia3.merge('a');
  ia3.setEnabled('a', false);
  assert.deepEqual(ia3.mergedAdapters(), []);
  close(rows(ia3.forward(tf.tensor2d(x))), y, 1e-5);
  assert.throws(() => ia3.addAdapter('a', true), /already has an adapter named "a"/);
  assert.deepEqual(ia3.namedParameters().map(([k]) => k), ['weight', 'bias', 'ia3_l.a', 'ia3_l.b']);
  assert.equal(ia3.deleteAdapter('a'), 1);
  assert.deepEqual(ia3.namedParameters().map(([k]) => k), ['weight', 'bias', 'ia3_l.b']);
  assert.throws(() => ia3.vector('a'), /no adapter named "a" \(has: b\)/);
});

test('init false draws l ~ N(0, 1) from the seeded stream (torch.randn), so outputs change from the start', () => {
  const draw = () => {
    manualSeed(9);
    const ia3 = new Ia3Layer(new Linear(64, 256), false);
    ia3.addAdapter('default', false);
    return ia3.vector('default').dataSync() as Float32Array;
  };
  const v = draw();
  assert.deepEqual(draw(), v, 'same seed, same draw');
  const mean = v.reduce((s, a) => s + a, 0) / v.length;
  const sd = Math.sqrt(v.reduce((s, a) => s + (a - mean) ** 2, 0) / v.length);
  assert.ok(Math.abs(mean) < 0.2 && Math.abs(sd - 1) < 0.15, `mean ${mean}, sd ${sd}`);
});
