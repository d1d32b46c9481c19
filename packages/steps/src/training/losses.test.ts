import assert from 'node:assert/strict';
import { before, test } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { initBackend } from '@peftkit/core';
import { ModulesToSaveWrapper, PeftModel, lmHeadCrossEntropy } from '@peftkit/models';
import { TINY_CONFIGS, sampleIds, tinyModel } from '@peftkit/models/testing';
import { causalLmHiddenNllSum, causalLmModelNllSum, causalLmNllSum, classificationNllSum, countCausalTargets } from './losses.js';

before(async () => {
  await initBackend('wasm');
});

test('prompt tuning: leadingLogits score the first label, as HF PEFT pads the labels with -100 for the virtual tokens only', () => {
  const B = 2;
  const T = 4;
  const V = 5;
  const P = 3; // virtual tokens
  const labels = [[2, 4, -100, 1], [-100, 3, 3, 0]];
  const full = tf.randomNormal([B, P + T, V], 0, 2, 'float32', 11) as tf.Tensor3D; // the model's logits with the virtual positions
  // HF: labels [-100 × P, labels], shift by one over all P + T positions.
  const padded = labels.map((row) => [...Array(P).fill(-100), ...row]);
  const hf = tf.tidy(() => causalLmNllSum(full, tf.tensor2d(padded, undefined, 'int32')).dataSync()[0]) / countCausalTargets(Int32Array.from(padded.flat()), B, P + T);
  // peftkit: the stripped logits plus the last virtual position's logits.
  const ours = tf.tidy(() => {
    const logits = tf.slice(full, [0, P, 0], [-1, T, -1]);
    const leading = tf.squeeze(tf.slice(full, [0, P - 1, 0], [-1, 1, -1]), [1]);
    return causalLmNllSum(logits, tf.tensor2d(labels, undefined, 'int32'), leading).dataSync()[0];
  });
  const n = countCausalTargets(Int32Array.from(labels.flat()), B, T, true);
  assert.equal(n, 6); // row 0: 2, 4, 1 (position 0 counts); row 1: 3, 3, 0
  assert.equal(countCausalTargets(Int32Array.from(labels.flat()), B, T), 5);
  assert.ok(Math.abs(ours / n - hf) < 1e-6, `${ours / n} vs ${hf}`);
  full.dispose();
});

// ---- The fused LM head + cross-entropy (lmHeadCrossEntropy) against the composed path: logits = h·Wᵀ, then the loss above.

/** max |a − b| / max |b|: the relative error of a whole tensor. */
function relErr(a: tf.Tensor, b: tf.Tensor): number {
  return tf.tidy(() => tf.max(tf.abs(tf.sub(a, b))).dataSync()[0] / tf.max(tf.abs(b)).dataSync()[0]);
}

/** Targets [n] in [0, vocab) with -100 at the given rows. */
function targetsWithIgnored(n: number, vocab: number, ignored: number[]): tf.Tensor1D {
  return tf.tensor1d(Array.from({ length: n }, (_, i) => (ignored.includes(i) ? -100 : (i * 7 + 3) % vocab)), 'int32');
}

test('lmHeadCrossEntropy: loss and gradients (hidden and weight) equal the logits path within 1e-5, with ignored rows and chunks that do not divide N', () => {
  const N = 23;
  const C = 12;
  const V = 37;
  const hidden = tf.randomNormal([N, C], 0, 1, 'float32', 1) as tf.Tensor2D;
  const weight = tf.randomNormal([V, C], 0, 1, 'float32', 2) as tf.Tensor2D;
  const targets = targetsWithIgnored(N, V, [0, 5, 6, 22]);
  // Upstream gradient 1/n as the trainer's mean loss gives it (a scalar other than 1).
  const reference = tf.grads((h: tf.Tensor, w: tf.Tensor) => tf.div(classificationNllSum(tf.matMul(h, w, false, true), targets), 19));
  const refLoss = classificationNllSum(tf.matMul(hidden, weight, false, true), targets).dataSync()[0];
  const [refDh, refDw] = reference([hidden, weight]);
  for (const chunkRows of [5, 1, 23, 100, undefined]) {
    const loss = lmHeadCrossEntropy(hidden, weight, targets, { chunkRows }).dataSync()[0];
    assert.ok(Math.abs(loss - refLoss) / refLoss < 1e-5, `chunkRows ${chunkRows}: ${loss} vs ${refLoss}`);
    const [dh, dw] = tf.grads((h: tf.Tensor, w: tf.Tensor) => tf.div(lmHeadCrossEntropy(h as tf.Tensor2D, w as tf.Tensor2D, targets, { chunkRows }), 19))([hidden, weight]);
    assert.ok(relErr(dh, refDh) < 1e-5, `chunkRows ${chunkRows}: dHidden off by ${relErr(dh, refDh)}`);
    assert.ok(relErr(dw, refDw) < 1e-5, `chunkRows ${chunkRows}: dW off by ${relErr(dw, refDw)}`);
    // Ignored rows get no gradient at all.
    for (const r of [0, 5, 6, 22]) assert.equal(tf.tidy(() => tf.max(tf.abs(tf.slice(dh, [r, 0], [1, -1]))).dataSync()[0]), 0);
    tf.dispose([dh, dw]);
  }
  // Every row ignored: 0 and zero gradients, not NaN.
  const none = tf.fill([N], -100, 'int32') as tf.Tensor1D;
  assert.equal(lmHeadCrossEntropy(hidden, weight, none, { chunkRows: 4 }).dataSync()[0], 0);
  assert.equal(tf.tidy(() => tf.max(tf.abs(tf.grad((h: tf.Tensor) => lmHeadCrossEntropy(h as tf.Tensor2D, weight, none))(hidden))).dataSync()[0]), 0);
  assert.throws(() => lmHeadCrossEntropy(hidden, weight, targets, { chunkRows: 0 }), /chunkRows must be a positive integer/);
  assert.throws(() => lmHeadCrossEntropy(hidden, tf.zeros([V, C + 1]) as tf.Tensor2D, targets), /weight \[V, C\]/);
  tf.dispose([hidden, weight, targets, refDh, refDw, none]);
});

test('lmHeadCrossEntropy: a trainable weight variable gets the reference dW through variableGrads; a frozen one costs no dW products and hidden gets the same gradient', async () => {
  const N = 10;
  const C = 8;
  const V = 29;
  const hidden = tf.randomNormal([N, C], 0, 1, 'float32', 3) as tf.Tensor2D;
  const targets = targetsWithIgnored(N, V, [4]);
  const w = tf.variable(tf.randomNormal([V, C], 0, 1, 'float32', 4), true, 'lmce-test-w') as tf.Variable<tf.Rank.R2>;
  const refDh = tf.grad((h: tf.Tensor) => classificationNllSum(tf.matMul(h, w, false, true), targets))(hidden);
  const { grads: refGrads } = tf.variableGrads(() => classificationNllSum(tf.matMul(hidden, w, false, true), targets), [w]);
  const { grads } = tf.variableGrads(() => lmHeadCrossEntropy(hidden, w, targets, { chunkRows: 3 }), [w]);
  assert.ok(relErr(grads[w.name], refGrads[w.name]) < 1e-5);
  // Matrix products of a step: per chunk (4 of 10 rows), the forward's, the backward's recomputation, dHidden and, when W trains, dW.
  const products = async () => (await tf.profile(() => tf.dispose(tf.grad((h: tf.Tensor) => lmHeadCrossEntropy(h as tf.Tensor2D, w, targets, { chunkRows: 3 }))(hidden)))).kernels.filter((k) => /MatMul/.test(k.name)).length;
  assert.equal(await products(), 16);
  w.trainable = false;
  assert.equal(await products(), 12);
  const dh = tf.grad((h: tf.Tensor) => lmHeadCrossEntropy(h as tf.Tensor2D, w, targets, { chunkRows: 3 }))(hidden);
  assert.ok(relErr(dh, refDh) < 1e-5);
  tf.dispose([hidden, targets, w, refDh, dh, ...Object.values(refGrads), ...Object.values(grads)]);
});

test('lmHeadCrossEntropy keeps no [tokens, vocab] tensor: peak memory of forward + backward under one logits tensor, and no tensor left behind', async () => {
  const N = 512;
  const C = 16;
  const V = 2048;
  const logitsBytes = N * V * 4; // 4 MiB
  const hidden = tf.randomNormal([N, C], 0, 1, 'float32', 5) as tf.Tensor2D;
  const weight = tf.randomNormal([V, C], 0, 1, 'float32', 6) as tf.Tensor2D;
  const targets = targetsWithIgnored(N, V, [1, 2, 3]);
  const before = tf.memory().numTensors;
  const step = (loss: (h: tf.Tensor2D, w: tf.Tensor2D) => tf.Scalar) => () => {
    const [dh, dw] = tf.grads((h: tf.Tensor, w: tf.Tensor) => loss(h as tf.Tensor2D, w as tf.Tensor2D))([hidden, weight]);
    tf.dispose([dh, dw]);
  };
  // tf.profile's peak counts every live tensor: subtract what was there before.
  const base = tf.memory().numBytes;
  const fused = (await tf.profile(step((h, w) => lmHeadCrossEntropy(h, w, targets, { chunkRows: 32 })))).peakBytes - base;
  const composed = (await tf.profile(step((h, w) => classificationNllSum(tf.matMul(h, w, false, true), targets)))).peakBytes - base;
  assert.equal(tf.memory().numTensors, before);
  // The composed path holds several [N, V] tensors at once (logits, log-softmax, one-hot, products).
  assert.ok(composed > 3 * logitsBytes, `composed peak ${composed}`);
  assert.ok(fused < logitsBytes, `fused peak ${fused} vs one logits tensor ${logitsBytes}`);
  tf.dispose([hidden, weight, targets]);
});

test('causalLmHiddenNllSum equals causalLmNllSum of the logits (same shift, -100 labels)', () => {
  const [B, T, C, V] = [3, 7, 10, 31];
  const hidden = tf.randomNormal([B, T, C], 0, 1, 'float32', 7) as tf.Tensor3D;
  const weight = tf.randomNormal([V, C], 0, 1, 'float32', 8) as tf.Tensor2D;
  const labels = tf.tensor2d([[1, 2, 3, 4, 5, 6, 7], [-100, -100, 9, 10, 11, -100, -100], [30, 0, 12, 13, 14, 15, 16]], undefined, 'int32');
  const ref = tf.grads((h: tf.Tensor, w: tf.Tensor) => causalLmNllSum(tf.reshape(tf.matMul(tf.reshape(h, [-1, C]), w, false, true), [B, T, V]), labels));
  const ours = tf.grads((h: tf.Tensor, w: tf.Tensor) => causalLmHiddenNllSum(h, w as tf.Tensor2D, labels, 4));
  const refLoss = causalLmNllSum(tf.reshape(tf.matMul(tf.reshape(hidden, [-1, C]), weight, false, true), [B, T, V]), labels).dataSync()[0];
  const loss = causalLmHiddenNllSum(hidden, weight, labels, 4).dataSync()[0];
  assert.ok(Math.abs(loss - refLoss) / refLoss < 1e-5, `${loss} vs ${refLoss}`);
  const [rh, rw] = ref([hidden, weight]);
  const [oh, ow] = ours([hidden, weight]);
  assert.ok(relErr(oh, rh) < 1e-5 && relErr(ow, rw) < 1e-5, `${relErr(oh, rh)}, ${relErr(ow, rw)}`);
  // The last position of every row predicts nothing.
  assert.equal(tf.tidy(() => tf.max(tf.abs(tf.slice(oh, [0, T - 1, 0], [-1, 1, -1]))).dataSync()[0]), 0);
  tf.dispose([hidden, weight, labels, rh, rw, oh, ow]);
});

test('causalLmHiddenNllSum with host labels: few targets (a label word after each prompt) take only their rows through the head, with the same loss and gradients; many targets keep the full path', async () => {
  const [B, T, C, V] = [3, 9, 10, 31];
  const hidden = tf.randomNormal([B, T, C], 0, 1, 'float32', 17) as tf.Tensor3D;
  const weight = tf.randomNormal([V, C], 0, 1, 'float32', 18) as tf.Tensor2D;
  const rows = [
    [-100, -100, -100, -100, 5, -100, -100, -100, -100],
    [-100, -100, -100, -100, -100, -100, -100, -100, 30],
    [-100, 7, -100, -100, -100, -100, -100, -100, -100],
  ];
  const host = Int32Array.from(rows.flat());
  const labels = tf.tensor2d(host, [B, T], 'int32');
  const full = tf.grads((h: tf.Tensor, w: tf.Tensor) => causalLmHiddenNllSum(h, w as tf.Tensor2D, labels));
  const sparse = tf.grads((h: tf.Tensor, w: tf.Tensor) => causalLmHiddenNllSum(h, w as tf.Tensor2D, labels, undefined, host));
  const a = causalLmHiddenNllSum(hidden, weight, labels).dataSync()[0];
  const b = causalLmHiddenNllSum(hidden, weight, labels, undefined, host).dataSync()[0];
  assert.ok(Math.abs(a - b) / a < 1e-6, `${b} vs ${a}`);
  const [fh, fw] = full([hidden, weight]);
  const [sh, sw] = sparse([hidden, weight]);
  assert.ok(relErr(sh, fh) < 1e-6 && relErr(sw, fw) < 1e-6, `${relErr(sh, fh)}, ${relErr(sw, fw)}`);
  // Only the three positions before a target get a gradient.
  const nonzero = tf.tidy(() => tf.sum(tf.cast(tf.notEqual(tf.sum(tf.abs(sh), -1), 0), 'int32')).dataSync()[0]);
  assert.equal(nonzero, 3);
  // The head runs on the 3 scored rows: its product is [3, C] · [C, V], not [B·(T-1), C] · [C, V].
  const profile = await tf.profile(() => tf.dispose(causalLmHiddenNllSum(hidden, weight, labels, undefined, host)));
  const products = profile.kernels.filter((k) => k.name === 'BatchMatMul').map((k) => k.inputShapes[0][0]);
  assert.deepEqual(products, [3]);
  // Every position a target (text): the full path, all B·(T-1) rows through the head.
  const dense = Int32Array.from({ length: B * T }, (_, i) => i % V);
  const denseLabels = tf.tensor2d(dense, [B, T], 'int32');
  const profileDense = await tf.profile(() => tf.dispose(causalLmHiddenNllSum(hidden, weight, denseLabels, undefined, dense)));
  assert.deepEqual(profileDense.kernels.filter((k) => k.name === 'BatchMatMul').map((k) => k.inputShapes[0][0]), [B * (T - 1)]);
  tf.dispose([hidden, weight, labels, denseLabels, fh, fw, sh, sw]);
});

test('causalLmModelNllSum: the fused path on GPT-2 (tied head) and Llama (untied lm_head) gives the logits path\'s loss and gradients of every parameter (full fine-tuning); a wrapped head or a first-token adapter falls back to the logits', () => {
  const ids = sampleIds(2, 9, 50, 3);
  const labels = tf.tidy(() => tf.where(tf.tensor2d([[1, 1, 1, 1, 1, 1, 1, 1, 1], [1, 1, 1, 1, 1, 1, 0, 0, 0]], undefined, 'bool'), ids, tf.fill([2, 9], -100, 'int32'))) as tf.Tensor2D;
  for (const config of [TINY_CONFIGS.gpt2, { ...TINY_CONFIGS.llama, tie_word_embeddings: false }]) {
    const model = tinyModel(config);
    model.requiresGrad(true);
    const peft = new PeftModel({ model, source: 'tiny' });
    const head = peft.outputHead();
    assert.ok(head, `${config.model_type}: a plain head`);
    assert.equal(head.weight, config.model_type === 'gpt2' ? model.getInputEmbeddings().weight : model.getSubmodule('lm_head')!.namedParameters()[0][1]);
    const vars = model.trainableParameters().map(([, v]) => v);
    const ref = tf.variableGrads(() => causalLmNllSum(peft.forward({ inputIds: ids }).logits, labels), vars);
    const ours = tf.variableGrads(() => causalLmModelNllSum(peft, { inputIds: ids }, labels, { chunkRows: 5 }), vars);
    const [a, b] = [ref.value.dataSync()[0], ours.value.dataSync()[0]];
    assert.ok(Math.abs(a - b) / a < 1e-5, `${config.model_type}: ${b} vs ${a}`);
    for (const v of vars) assert.ok(relErr(ours.grads[v.name], ref.grads[v.name]) < 1e-5, `${config.model_type}: ${v.name} off by ${relErr(ours.grads[v.name], ref.grads[v.name])}`);
    tf.dispose([ref.value, ours.value, ...Object.values(ref.grads), ...Object.values(ours.grads)]);
    // A modules_to_save copy (or a LoRA layer) in place of lm_head: no plain head, the logits path.
    model.setSubmodule('lm_head', new ModulesToSaveWrapper(model.getSubmodule('lm_head')!, 'lm_head'));
    assert.equal(peft.outputHead(), undefined);
    assert.throws(() => peft.forwardHidden({ inputIds: ids }), /outputHead\(\) is undefined/);
    model.dispose();
  }
  // An adapter that predicts the first token (prompt tuning) needs a virtual position's logits.
  const model = tinyModel('gpt2');
  const peft = new PeftModel({ model, source: 'tiny' });
  assert.ok(peft.outputHead());
  peft.addAdapter({ name: 'p', method: 'fake', peftType: null, config: {}, predictsFirstToken: () => true, setEnabled: () => {}, trainableParameters: () => [], stateDict: () => new Map(), loadStateDict: () => {}, adapterConfig: () => ({}), dispose: () => {} });
  assert.equal(peft.outputHead(), undefined);
  model.dispose();
  tf.dispose([ids, labels]);
});
