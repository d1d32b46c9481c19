import assert from 'node:assert/strict';
import { test } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import type { PreTrainedModel } from '../model.js';
import { TINY_CONFIGS, cloneModel, sampleIds, tinyModel } from '../testing/tiny-models.js';
import { checkpointBlock } from './checkpoint.js';
import { Linear } from './layers.js';
import { getRngState, manualSeed } from './rng.js';

/** Mean next-token loss of `model` on `ids` and its gradients, training mode, the stream seeded with `seed`. */
function lossAndGrads(model: PreTrainedModel, ids: tf.Tensor2D, seed = 7): { loss: number; grads: Map<string, Float32Array>; rngAfter: number } {
  model.train();
  manualSeed(seed);
  const vars = model.trainableParameters();
  const { value, grads } = tf.variableGrads(() => {
    const logits = model.forward({ inputIds: ids }).logits as tf.Tensor3D; // [B, T, V]
    const [B, T, V] = logits.shape;
    const x = tf.slice(logits, [0, 0, 0], [B, T - 1, V]).reshape([-1, V]);
    const y = tf.oneHot(tf.slice(ids, [0, 1], [B, T - 1]).reshape([-1]), V);
    return tf.losses.softmaxCrossEntropy(y, x) as tf.Scalar;
  }, vars.map(([, v]) => v));
  const rngAfter = getRngState();
  const out = new Map(vars.map(([n, v]) => [n, grads[v.name].dataSync() as Float32Array]));
  const loss = value.dataSync()[0];
  tf.dispose([value, ...Object.values(grads)]);
  return { loss, grads: out, rngAfter };
}

function maxDiff(a: Float32Array, b: Float32Array): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

/** Same loss, same gradient for every trainable parameter (1e-5), same stream afterwards, with checkpointing on and off. */
function assertSameTraining(plain: PreTrainedModel, ckpt: PreTrainedModel, ids: tf.Tensor2D): void {
  assert.ok(ckpt.gradientCheckpointingEnable() > 0);
  const a = lossAndGrads(plain, ids);
  const b = lossAndGrads(ckpt, ids);
  assert.ok(Math.abs(a.loss - b.loss) < 1e-5, `loss ${a.loss} vs ${b.loss}`);
  assert.deepEqual([...b.grads.keys()], [...a.grads.keys()]);
  assert.ok(a.grads.size > 0);
  for (const [n, g] of a.grads) {
    const d = maxDiff(g, b.grads.get(n)!);
    assert.ok(d < 1e-5, `${n}: gradients differ by ${d}`);
    assert.ok(g.some((x) => x !== 0), `${n}: zero gradient (the test would prove nothing)`);
  }
  assert.equal(b.rngAfter, a.rngAfter, 'the random stream ends where it ends without checkpointing');
}

for (const type of ['gpt2', 'llama', 'bert'] as const) {
  test(`${type}: checkpointed blocks give the same loss and gradients as plain ones, dropout on`, () => {
    const cfg = { ...TINY_CONFIGS[type], resid_pdrop: 0.2, attn_pdrop: 0.2, embd_pdrop: 0.2, attention_dropout: 0.2, hidden_dropout_prob: 0.2, attention_probs_dropout_prob: 0.2 };
    manualSeed(1);
    const plain = tinyModel(cfg);
    const ckpt = cloneModel(plain);
    // BERT's pooler is not part of this loss: it would get no gradient either way.
    for (const m of [plain, ckpt]) for (const [n, v] of m.namedParameters()) if (n.startsWith('pooler.')) v.trainable = false;
    const ids = sampleIds(2, 12, 50, 3);
    assertSameTraining(plain, ckpt, ids);
    // Dropout is really drawn: another stream position gives other masks, so another loss.
    assert.notEqual(lossAndGrads(ckpt, ids, 8).loss, lossAndGrads(ckpt, ids, 7).loss);
    plain.dispose();
    ckpt.dispose();
    ids.dispose();
  });
}

test('a frozen base: gradients reach a trainable embedding through checkpointed frozen blocks', () => {
  manualSeed(2);
  const plain = tinyModel({ ...TINY_CONFIGS.gpt2, resid_pdrop: 0.1, attn_pdrop: 0.1, embd_pdrop: 0.1 });
  const ckpt = cloneModel(plain);
  for (const m of [plain, ckpt]) {
    m.requiresGrad(false);
    // The position table only (the word table's gather gradient needs a kernel wasm lacks), and one layer inside block 1.
    for (const [n, v] of m.namedParameters()) if (n === 'transformer.wpe.weight' || n === 'transformer.h.1.attn.c_attn.weight') v.trainable = true;
  }
  const ids = sampleIds(2, 10, 50, 5);
  assertSameTraining(plain, ckpt, ids);
  plain.dispose();
  ckpt.dispose();
  ids.dispose();
});

test('checkpointBlock keeps only its inputs and output, not the block\'s intermediates', () => {
  const lin = new Linear(64, 64);
  const x = tf.randomNormal([16, 64]);
  const run = (ckpt: boolean) => {
    const before = tf.memory().numBytes;
    let held = 0;
    const { grads } = tf.variableGrads(() => {
      const f = (h: tf.Tensor) => {
        let y = h;
        for (let i = 0; i < 8; i++) y = tf.tanh(lin.forward(y));
        return y;
      };
      const y = ckpt ? checkpointBlock(lin, (ins) => f(ins[0]), [x]) : f(x);
      const loss = tf.sum(y) as tf.Scalar;
      held = tf.memory().numBytes - before;
      return loss;
    }, lin.trainableParameters().map(([, v]) => v));
    const g = Object.values(grads).map((t) => t.dataSync() as Float32Array);
    tf.dispose(Object.values(grads));
    return { held, g };
  };
  const plain = run(false);
  const ck = run(true);
  for (let i = 0; i < plain.g.length; i++) assert.ok(maxDiff(plain.g[i], ck.g[i]) < 1e-5);
  // 8 layers of [16, 64] activations (4 KiB each) and their tanh outputs live without checkpointing.
  assert.ok(ck.held < plain.held / 2, `held ${ck.held} bytes with checkpointing, ${plain.held} without`);
  lin.dispose();
  x.dispose();
});
