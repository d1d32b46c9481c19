import assert from 'node:assert/strict';
import { before, test } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { initBackend } from '@peftkit/core';
import { Conv1D, Embedding, Linear, Module, manualSeed } from '@peftkit/models';
import { LoraEmbedding, LoraLayer, MergeError, isLinearBase, loraScaling, type LoraAdapterSpec } from './layer.js';
import { maxAbsDiff } from '@peftkit/models/testing';

before(async () => {
  await initBackend('wasm');
  manualSeed(7);
});

const spec = (o: Partial<LoraAdapterSpec> = {}): LoraAdapterSpec => ({ r: 4, loraAlpha: 8, loraDropout: 0, useRslora: false, init: true, ...o });
const input = (inF: number) => tf.randomNormal([2, 3, inF], 0, 1, 'float32', 3) as tf.Tensor3D;

test('A and B have HF shapes, init leaves the output unchanged (B = 0), on Linear and Conv1D', () => {
  for (const base of [new Linear(6, 5), new Conv1D(6, 5)]) {
    const x = input(6);
    const y0 = base.forward(x);
    const layer = new LoraLayer(base, 'x');
    layer.addAdapter('default', spec());
    const { A, B } = layer.loraWeights('default');
    assert.deepEqual(A.shape, [4, 6]);
    assert.deepEqual(B.shape, [5, 4]);
    assert.equal(B.sum().dataSync()[0], 0);
    assert.ok(A.abs().max().dataSync()[0] > 0);
    assert.equal(maxAbsDiff(layer.forward(x), y0), 0);
    // The base's own names are kept; the adapter's live under lora_A / lora_B.
    assert.deepEqual(layer.namedParameters().map(([n]) => n), ['weight', 'bias', 'lora_A.default.weight', 'lora_B.default.weight']);
  }
});

test('A is Kaiming-uniform (a = sqrt(5)): U(-1/sqrt(in), 1/sqrt(in)); "gaussian" has std 1/r', () => {
  const layer = new LoraLayer(new Linear(400, 3), 'x');
  layer.addAdapter('k', spec({ r: 50 }));
  layer.addAdapter('g', spec({ r: 50, init: 'gaussian' }));
  const a = layer.loraWeights('k').A.dataSync();
  const bound = 1 / Math.sqrt(400);
  assert.ok(a.every((v) => Math.abs(v) <= bound));
  const std = (xs: ArrayLike<number>) => Math.sqrt(Array.from(xs).reduce((s, v) => s + v * v, 0) / xs.length);
  assert.ok(Math.abs(std(a) - bound / Math.sqrt(3)) < 0.05 * bound, `uniform std ${std(a)}`);
  const g = layer.loraWeights('g').A.dataSync();
  assert.ok(Math.abs(std(g) - 1 / 50) < 0.002, `gaussian std ${std(g)}`);
  assert.equal(layer.loraWeights('g').B.abs().sum().dataSync()[0], 0);
});

test('the forward pass is base(x) + (x Aᵀ) Bᵀ · alpha / r, checked by hand', () => {
  const base = new Linear(2, 2);
  base.weight.assign(tf.tensor2d([[1, 0], [0, 1]]));
  base.bias!.assign(tf.zeros([2]));
  const layer = new LoraLayer(base);
  layer.addAdapter('default', spec({ r: 1, loraAlpha: 2, init: false }));
  const { A, B } = layer.loraWeights('default');
  A.assign(tf.tensor2d([[1, 2]])); // [r=1, in=2]
  B.assign(tf.tensor2d([[3], [4]])); // [out=2, r=1]
  // x = [1, 1]: A x = 3, B (A x) = [9, 12], scaling 2/1 = 2: y = [1, 1] + [18, 24].
  assert.deepEqual([...layer.forward(tf.tensor2d([[1, 1]])).dataSync()], [19, 25]);
});

test('scaling: lora_alpha / r, rsLoRA lora_alpha / sqrt(r)', () => {
  const layer = new LoraLayer(new Linear(4, 4));
  layer.addAdapter('plain', spec({ r: 4, loraAlpha: 8 }));
  layer.addAdapter('rs', spec({ r: 4, loraAlpha: 8, useRslora: true }));
  assert.equal(layer.adapterInfo('plain').scaling, 2);
  assert.equal(layer.adapterInfo('rs').scaling, 4);
  assert.equal(loraScaling(16, 32, true), 8);
});

test('merge then unmerge restores the weight; merged and unmerged outputs agree (Linear and Conv1D)', () => {
  for (const base of [new Linear(6, 5), new Conv1D(6, 5)]) {
    const layer = new LoraLayer(base);
    layer.addAdapter('default', spec({ init: false }));
    const x = input(6);
    const w0 = base.weight.clone();
    const yUnmerged = layer.forward(x);
    assert.ok(maxAbsDiff(yUnmerged, base.forward(x)) > 1e-3, 'the adapter changes the output');
    layer.merge('default');
    assert.ok(maxAbsDiff(base.weight, w0) > 1e-3);
    assert.ok(maxAbsDiff(layer.forward(x), yUnmerged) < 1e-5);
    assert.ok(maxAbsDiff(base.forward(x), yUnmerged) < 1e-5, 'the base alone now gives the adapted output');
    layer.merge('default'); // no-op
    layer.unmerge('default');
    assert.ok(maxAbsDiff(base.weight, w0) < 1e-6);
    assert.ok(maxAbsDiff(layer.forward(x), yUnmerged) < 1e-5);
  }
});

test('fan_in_fan_out: merging into Conv1D ([in, out]) adds (B·A)ᵀ · scaling', () => {
  const base = new Conv1D(6, 5);
  const layer = new LoraLayer(base);
  assert.equal(layer.fanInFanOut, true);
  assert.equal(new LoraLayer(new Linear(6, 5)).fanInFanOut, false);
  layer.addAdapter('default', spec({ r: 2, loraAlpha: 6, init: false }));
  const { A, B } = layer.loraWeights('default');
  const w0 = base.weight.clone();
  layer.merge('default');
  const expected = tf.add(w0, tf.mul(tf.matMul(B, A).transpose(), 3)); // [in, out]
  assert.deepEqual(base.weight.shape, [6, 5]);
  assert.ok(maxAbsDiff(base.weight, expected) < 1e-6);
});

test('gradients reach only A and B', () => {
  const base = new Linear(6, 5);
  base.requiresGrad(false);
  const layer = new LoraLayer(base);
  layer.addAdapter('default', spec());
  const x = input(6);
  const { grads } = tf.variableGrads(() => layer.forward(x).square().sum() as tf.Scalar);
  const { A, B } = layer.loraWeights('default');
  assert.deepEqual(Object.keys(grads).sort(), [A.name, B.name].sort());
  // B = 0 at init: A's gradient is zero, B's is not (as in the paper, training starts from the base).
  assert.equal(grads[A.name].abs().sum().dataSync()[0], 0);
  assert.ok(grads[B.name].abs().sum().dataSync()[0] > 0);
});

test('disabled adapters give the base output; several enabled adapters add up', () => {
  const base = new Linear(6, 5);
  const layer = new LoraLayer(base);
  layer.addAdapter('a', spec({ init: false }));
  layer.addAdapter('b', spec({ r: 2, init: false }));
  const x = input(6);
  const y0 = base.forward(x);
  const both = layer.forward(x);
  layer.setEnabled('b', false);
  const onlyA = layer.forward(x);
  layer.setEnabled('a', false);
  assert.equal(maxAbsDiff(layer.forward(x), y0), 0);
  layer.setEnabled('b', true);
  const onlyB = layer.forward(x);
  // (y0 + dA) + (y0 + dB) - y0 = y0 + dA + dB
  assert.ok(maxAbsDiff(both, tf.sub(tf.add(onlyA, onlyB), y0)) < 1e-5);
  // Disabling a merged adapter unmerges it.
  layer.setEnabled('a', true);
  const w0 = base.weight.clone();
  layer.merge('a');
  layer.setEnabled('a', false);
  assert.ok(maxAbsDiff(base.weight, w0) < 1e-6);
  assert.deepEqual(layer.mergedAdapters(), []);
  // Deleting an adapter removes its parameters.
  assert.equal(layer.deleteAdapter('a'), 1);
  assert.deepEqual(layer.namedParameters().map(([n]) => n), ['weight', 'bias', 'lora_A.b.weight', 'lora_B.b.weight']);
  assert.throws(() => layer.addAdapter('b', spec()), /already has an adapter named "b"/);
});

/** A stand-in for QLoRA's 4-bit layer: a linear-like module LoRA can wrap, that cannot take a float delta. */
class FrozenLinear extends Module {
  readonly inFeatures = 6;
  readonly outFeatures = 5;
  private readonly w = tf.keep(tf.randomNormal([5, 6], 0, 1, 'float32', 9)); // [out, in]
  forward(x: tf.Tensor): tf.Tensor {
    return tf.tidy(() => tf.matMul(x.reshape([-1, 6]), this.w, false, true).reshape([...x.shape.slice(0, -1), 5]));
  }
  denseWeight(): tf.Tensor2D {
    return this.w as tf.Tensor2D;
  }
}

class AddableLinear extends FrozenLinear {
  added?: tf.Tensor;
  addToWeight(delta: tf.Tensor2D): void {
    this.added = tf.keep(this.added ? tf.add(this.added, delta) : delta.clone());
  }
}

test('any module with forward/inFeatures/outFeatures/denseWeight can be wrapped; merging it needs addToWeight', () => {
  const q = new FrozenLinear();
  assert.ok(isLinearBase(q));
  assert.ok(!isLinearBase(new Module()));
  const layer = new LoraLayer(q, 'model.layers.0.self_attn.q_proj');
  layer.addAdapter('default', spec({ init: false }));
  const x = input(6);
  assert.ok(maxAbsDiff(layer.forward(x), q.forward(x)) > 1e-3);
  assert.throws(() => layer.merge('default'), (e: Error) => e instanceof MergeError && /model\.layers\.0\.self_attn\.q_proj/.test(e.message) && /Dequantize the model first/.test(e.message));
  assert.equal(layer.mergedAdapters().length, 0);

  const a = new AddableLinear();
  const la = new LoraLayer(a);
  la.addAdapter('default', spec({ init: false }));
  la.merge('default');
  assert.ok(maxAbsDiff(a.added!, la.deltaWeight('default')) < 1e-7, 'the hook gets scaling · B·A as [out, in]');
  la.unmerge('default');
  assert.ok(a.added!.abs().max().dataSync()[0] < 1e-6);
});

test('lora_dropout drops the LoRA branch\'s input in training mode only', () => {
  const base = new Linear(64, 4);
  const layer = new LoraLayer(base);
  layer.addAdapter('default', spec({ init: false, loraDropout: 0.5 }));
  assert.deepEqual(layer.namedModules().map(([n]) => n).filter((n) => n.startsWith('lora_dropout.')), ['lora_dropout.default']);
  const x = tf.ones([3, 64]);
  layer.eval();
  const a = layer.forward(x);
  assert.equal(maxAbsDiff(layer.forward(x), a), 0, 'eval: deterministic');
  layer.train();
  const b = layer.forward(x);
  const c = layer.forward(x);
  assert.ok(maxAbsDiff(b, a) > 1e-4 && maxAbsDiff(c, b) > 1e-4, 'train: masks differ per call');
  // The base path is untouched by the mask: with the adapter off, train and eval agree.
  layer.setEnabled('default', false);
  assert.equal(maxAbsDiff(layer.forward(x), base.forward(x)), 0);
});

test('forward, merge and unmerge leave no tensors behind', () => {
  const layer = new LoraLayer(new Conv1D(6, 5));
  layer.addAdapter('default', spec({ init: false }));
  const x = input(6);
  layer.forward(x).dispose(); // warm-up
  const n = tf.memory().numTensors;
  layer.forward(x).dispose();
  layer.merge('default');
  layer.unmerge('default');
  layer.denseWeight().dispose();
  layer.deltaWeight('default').dispose();
  assert.equal(tf.memory().numTensors, n);
});

// DoRA by hand. W = [[1, 0], [0, 2]], bias [0.5, -1], r 1, A = [[1, 1]], B = [[1], [0]], scaling 1:
// W + s·B·A = [[2, 1], [0, 2]], row norms n = [√5, 2]; with m = [1, 4], f = m / n = [1/√5, 2].
// x = [1, 1]: (W + s·B·A) x = [3, 2], y = f ⊙ [3, 2] + bias = [3/√5 + 0.5, 3].
// For loss = Σ y with n held constant: dm = [3/√5, 1], dA = s·Σ_i f_i B_i xᵀ = [1/√5, 1/√5],
// dB = f ⊙ s·(A x) = [2/√5, 4]. Were n differentiated, dA and dB would differ.
const R5 = Math.sqrt(5);
function handDora(kind: 'linear' | 'conv1d'): LoraLayer {
  const base = kind === 'linear' ? new Linear(2, 2) : new Conv1D(2, 2);
  base.weight.assign(kind === 'linear' ? tf.tensor2d([[1, 0], [0, 2]]) : tf.tensor2d([[1, 0], [0, 2]]).transpose());
  base.bias!.assign(tf.tensor1d([0.5, -1]));
  base.requiresGrad(false);
  const layer = new LoraLayer(base, 'x');
  layer.addAdapter('d', spec({ r: 1, loraAlpha: 1, init: false, useDora: true }));
  const { A, B } = layer.loraWeights('d');
  A.assign(tf.tensor2d([[1, 1]]));
  B.assign(tf.tensor2d([[1], [0]]));
  layer.magnitudeVector('d')!.assign(tf.tensor1d([1, 4]));
  return layer;
}
const close = (t: tf.Tensor, want: number[], what: string, tol = 1e-6) => {
  const got = [...t.dataSync()];
  assert.equal(got.length, want.length, what);
  got.forEach((v, i) => assert.ok(Math.abs(v - want[i]) <= tol, `${what}[${i}]: ${v} vs ${want[i]}`));
};

test('DoRA by hand (Linear and Conv1D): forward, gradients with the norm detached, merge, unmerge', () => {
  for (const kind of ['linear', 'conv1d'] as const) {
    const layer = handDora(kind);
    assert.deepEqual(layer.namedParameters().map(([n]) => n), ['weight', 'bias', 'lora_A.d.weight', 'lora_B.d.weight', 'lora_magnitude_vector.d.weight']);
    const x = tf.tensor2d([[1, 1]]);
    close(layer.forward(x), [3 / R5 + 0.5, 3], `${kind} y`);
    const { A, B } = layer.loraWeights('d');
    const m = layer.magnitudeVector('d')!;
    const { grads } = tf.variableGrads(() => layer.forward(x).sum() as tf.Scalar, [m, A, B]);
    close(grads[m.name], [3 / R5, 1], `${kind} dm`);
    close(grads[A.name], [1 / R5, 1 / R5], `${kind} dA`);
    close(grads[B.name], [2 / R5, 4], `${kind} dB`);
    const w0 = layer.weight!.clone();
    layer.merge('d');
    const merged = kind === 'linear' ? [2 / R5, 1 / R5, 0, 4] : [2 / R5, 0, 1 / R5, 4]; // f ⊙ (W + s·B·A) per output row, stored [in, out] for Conv1D
    close(layer.weight!, merged, `${kind} merged W`);
    close(layer.forward(x), [3 / R5 + 0.5, 3], `${kind} merged y`);
    layer.unmerge('d');
    assert.ok(maxAbsDiff(layer.weight!, w0) < 1e-6, `${kind} unmerge restores W`);
  }
});

test('DoRA starts as plain LoRA (m = ‖W + s·B·A‖ at init) and follows dropout as HF (x Wᵀ of the dropped-out x)', () => {
  const base = new Linear(6, 5);
  const x = input(6);
  const plain = new LoraLayer(base, 'x');
  plain.addAdapter('p', spec({ init: false }));
  const dora = new LoraLayer(new Linear(6, 5), 'y');
  (dora.baseLayer as Linear).weight.assign(base.weight);
  (dora.baseLayer as Linear).bias!.assign(base.bias!);
  dora.addAdapter('d', spec({ init: false, useDora: true }));
  dora.loraWeights('d').A.assign(plain.loraWeights('p').A);
  dora.loraWeights('d').B.assign(plain.loraWeights('p').B);
  // m was taken with dora's own random A, B: set it from the copied ones, as init would have.
  const W = base.weight;
  dora.magnitudeVector('d')!.assign(tf.tidy(() => tf.norm(tf.add(W, tf.mul(tf.matMul(plain.loraWeights('p').B, plain.loraWeights('p').A), 2)), 'euclidean', 1)));
  assert.ok(maxAbsDiff(dora.forward(x), plain.forward(x)) < 1e-5);
  // Init itself: a fresh DoRA adapter's m is the norm of its own W + s·B·A.
  const fresh = new LoraLayer(new Linear(6, 5), 'z');
  fresh.addAdapter('d', spec({ init: false, useDora: true }));
  const { A, B } = fresh.loraWeights('d');
  const want = tf.tidy(() => tf.norm(tf.add((fresh.baseLayer as Linear).weight, tf.mul(tf.matMul(B, A), 2)), 'euclidean', 1));
  assert.ok(maxAbsDiff(fresh.magnitudeVector('d')!, want) < 1e-6);
  // With dropout in training, y = base(x) + (f − 1)·(x_d Wᵀ) + f·s·B A x_d: p → 1 drops everything, leaving base(x).
  const drop = new LoraLayer(new Linear(6, 5), 'w');
  drop.addAdapter('d', spec({ init: false, useDora: true, loraDropout: 0.999999 }));
  drop.train(true);
  assert.ok(maxAbsDiff(drop.forward(x), drop.baseLayer.forward(x)) < 1e-4);
});

// LoRA on an embedding by hand. W = [[1, 0], [0, 1], [1, 1]] (vocab 3, dim 2), A = [[1, 2, 3]],
// B = [[1], [-1]], alpha 2, r 1 → scaling 2. ids [2, 0]: W rows [1, 1], [1, 0]; Aᵀ[ids] = [3], [1];
// times Bᵀ and 2: [6, −6], [2, −2]; y = [[7, −5], [3, −2]].
// DoRA: s·(B·A)ᵀ = [[2, −2], [4, −4], [6, −6]], W + that = [[3, −2], [4, −3], [7, −5]], norms over
// the vocabulary per dimension [√74, √38]; m = [1, 1] → y = [[7/√74, −5/√38], [3/√74, −2/√38]].
function handEmbedding(useDora: boolean): LoraEmbedding {
  const base = new Embedding(3, 2);
  base.weight.assign(tf.tensor2d([[1, 0], [0, 1], [1, 1]]));
  base.requiresGrad(false);
  const e = new LoraEmbedding(base, 'embed_tokens');
  e.addAdapter('default', spec({ r: 1, loraAlpha: 2, useDora }));
  e.loraWeights('default').A.assign(tf.tensor2d([[1, 2, 3]]));
  e.loraWeights('default').B.assign(tf.tensor2d([[1], [-1]]));
  e.magnitudeVector('default')?.assign(tf.tensor1d([1, 1]));
  return e;
}

test('LoRA on an embedding by hand: HF\'s shapes and names, init (A = 0), forward, merge, unmerge, gradient through the lookup', () => {
  const fresh = new LoraEmbedding(new Embedding(3, 2), 'e');
  fresh.addAdapter('default', spec({ r: 1 }));
  assert.equal(fresh.loraWeights('default').A.abs().sum().dataSync()[0], 0, 'A starts at zero (HF: zeros_ for A, normal_ for B)');
  assert.ok(fresh.loraWeights('default').B.abs().sum().dataSync()[0] > 0);
  const e = handEmbedding(false);
  assert.deepEqual(e.namedParameters().map(([n]) => n), ['weight', 'lora_embedding_A.default', 'lora_embedding_B.default']);
  const ids = tf.tensor1d([2, 0], 'int32');
  close(e.forward(ids), [7, -5, 3, -2], 'y');
  const w0 = e.weight.clone();
  e.merge('default');
  close(e.weight, [3, -2, 4, -3, 7, -5], 'merged W = W + s·(B·A)ᵀ');
  close(e.forward(ids), [7, -5, 3, -2], 'merged y');
  e.unmerge('default');
  assert.equal(maxAbsDiff(e.weight, w0), 0);
  // d(Σ y)/dA[0, v] = s·Σ_j B[j, 0] per occurrence of v = 2·(1 − 1) = 0; use Σ y·[1, 0] instead: 2·B[0, 0] = 2 at ids 2 and 0.
  const { A } = e.loraWeights('default');
  const { grads } = tf.variableGrads(() => tf.sum(tf.mul(e.forward(ids), tf.tensor1d([1, 0]))) as tf.Scalar, [A]);
  close(grads[A.name], [2, 0, 2], 'dA');
});

test('DoRA on an embedding by hand: forward and merge', () => {
  const e = handEmbedding(true);
  const ids = tf.tensor1d([2, 0], 'int32');
  const [r74, r38] = [Math.sqrt(74), Math.sqrt(38)];
  close(e.forward(ids), [7 / r74, -5 / r38, 3 / r74, -2 / r38], 'y');
  e.merge('default');
  close(e.weight, [3 / r74, -2 / r38, 4 / r74, -3 / r38, 7 / r74, -5 / r38], 'merged W');
  e.unmerge('default');
  close(e.weight, [1, 0, 0, 1, 1, 1], 'unmerged W', 1e-6);
});
