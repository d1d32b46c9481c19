// PeftkitAttention on WebGPU (llvmpipe where there is no GPU) against the composed path it replaces
// (../reference/attention.ts, with seededDropout on the probabilities when dropout is on): outputs and the gradients
// of q, k and v, relative 1e-4. Own process: tfjs's backend is global.
import assert from 'node:assert/strict';
import { before, test } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { initBackend, webgpuUnavailable } from '@peftkit/core';
import '../../index.js'; // registers peftkit's kernels when a backend starts
import { attentionBias, scaledDotProductAttention } from '../../architectures/attention.js';
import { fusedAttention, fusedAttentionApplies, PEFTKIT_ATTENTION, type AttentionDropout } from '../attention.js';
import { PEFTKIT_DROPOUT, seededDropout } from '../dropout.js';
import { attentionReference } from '../reference/attention.js';
import { attentionWebGpuConfig, keysPerTile, ROWS } from './attention.js';
import { TINY_CONFIGS, cloneModel, sampleIds, tinyModel } from '../../testing/tiny-models.js';
import { manualSeed } from '../../nn/rng.js';
import type { PreTrainedModel } from '../../model.js';

const reason = await webgpuUnavailable();
if (reason) console.log(`# SKIP WebGPU attention kernel: ${reason}`);

before(async () => {
  if (!reason) await initBackend('webgpu');
});

/** max |a − e| ≤ rtol · max |e| + atol (relative to the tensor's scale, as webgpu-parity.test.ts). */
async function assertClose(actual: tf.Tensor, expected: tf.Tensor, what: string, rtol = 1e-4, atol = 1e-6): Promise<void> {
  assert.deepEqual(actual.shape, expected.shape, `${what}: shape`);
  const a = (await actual.data()) as Float32Array;
  const e = (await expected.data()) as Float32Array;
  let diff = 0;
  let scale = 0;
  for (let i = 0; i < e.length; i++) {
    assert.ok(Number.isFinite(a[i]), `${what}: element ${i} is ${a[i]}`);
    diff = Math.max(diff, Math.abs(a[i] - e[i]));
    scale = Math.max(scale, Math.abs(e[i]));
  }
  assert.ok(scale > 0, `${what}: the reference is all zeros`);
  assert.ok(diff <= rtol * scale + atol, `${what}: max |diff| ${diff.toExponential(3)} > ${rtol} × max |ref| ${scale.toExponential(3)} + ${atol}`);
}

interface Case {
  name: string;
  B: number;
  H: number;
  KVH: number;
  T: number;
  past: number;
  D: number;
  causal: boolean;
  /** Rows of the [B, past + T] attention mask (1 = visible), or none. */
  mask?: number[][];
  /** Dropout of the probabilities; the reference applies seededDropout(softmax(scores), rate, seed0, seed1). */
  dropout?: AttentionDropout;
}

/** Runs one case through the fused op and the reference: outputs and d(sum(out ∘ w))/d(q, k, v). */
async function check(c: Case): Promise<void> {
  const d = c.dropout;
  const refDrop = d && ((p: tf.Tensor) => seededDropout(p, d.rate, d.seed0, d.seed1));
  const S = c.past + c.T;
  const q = tf.randomNormal([c.B, c.H, c.T, c.D], 0, 1, 'float32', 11) as tf.Tensor4D;
  const k = tf.randomNormal([c.B, c.KVH, S, c.D], 0, 1, 'float32', 12) as tf.Tensor4D;
  const v = tf.randomNormal([c.B, c.KVH, S, c.D], 0, 1, 'float32', 13) as tf.Tensor4D;
  const w = tf.randomNormal([c.B, c.H, c.T, c.D], 0, 1, 'float32', 14);
  const mask = c.mask ? (tf.tensor2d(c.mask, [c.B, S], 'int32') as tf.Tensor2D) : undefined;
  const bias = attentionBias({ queryLength: c.T, pastLength: c.past, attentionMask: mask, causal: c.causal });
  const scale = 1 / Math.sqrt(c.D);
  assert.ok(fusedAttentionApplies(q, k, v, bias), `${c.name}: the fused kernel takes these shapes`);
  const loss = (f: typeof fusedAttention) => (a: tf.Tensor, b: tf.Tensor, e: tf.Tensor) => tf.sum(tf.mul(f(a as tf.Tensor4D, b as tf.Tensor4D, e as tf.Tensor4D, scale, bias, d), w));
  const fused = fusedAttention(q, k, v, scale, bias, d); // tape off: the output-only variant
  const ref = attentionReference(q, k, v, scale, bias, refDrop);
  await assertClose(fused, ref, `${c.name}: output`);
  const gFused = tf.grads(loss(fusedAttention))([q, k, v]); // tape on: the variant with row statistics
  const gRef = tf.grads(loss((a, b, e, s, m) => attentionReference(a, b, e, s, m, refDrop)))([q, k, v]);
  for (const [i, n] of ['dq', 'dk', 'dv'].entries()) await assertClose(gFused[i], gRef[i], `${c.name}: ${n}`);
  tf.dispose([q, k, v, w, mask, bias, fused, ref, ...gFused, ...gRef].filter((t): t is tf.Tensor => t !== undefined));
}

test('causal self-attention (B 2, H 2, T 12, D 8)', { skip: reason }, async () => {
  await check({ name: 'causal', B: 2, H: 2, KVH: 2, T: 12, past: 0, D: 8, causal: true });
});

test('causal with right and left padding: a left-padded row whose first queries see no key at all', { skip: reason }, async () => {
  const row = (pad: number, len: number, left: boolean) => Array.from({ length: len }, (_, i) => (left ? i >= pad : i < len - pad) ? 1 : 0);
  await check({ name: 'padded', B: 3, H: 2, KVH: 2, T: 10, past: 0, D: 8, causal: true, mask: [row(0, 10, false), row(3, 10, false), row(4, 10, true)] });
});

test('grouped-query heads (H 4, KVH 2), causal and padded', { skip: reason }, async () => {
  await check({ name: 'gqa', B: 2, H: 4, KVH: 2, T: 9, past: 0, D: 16, causal: true, mask: [[1, 1, 1, 1, 1, 1, 1, 1, 1], [1, 1, 1, 1, 1, 1, 0, 0, 0]] });
});

test('a prefix or cache in front (S > T): causal with a [B, S] mask, bidirectional with padding only, no bias at all', { skip: reason }, async () => {
  await check({ name: 'past causal', B: 2, H: 4, KVH: 2, T: 7, past: 5, D: 8, causal: true, mask: [Array(12).fill(1), [...Array(10).fill(1), 0, 0]] });
  await check({ name: 'past bidirectional (bias [B, 1, 1, S])', B: 2, H: 2, KVH: 1, T: 6, past: 3, D: 8, causal: false, mask: [Array(9).fill(1), [1, 1, 1, 1, 1, 1, 0, 0, 0]] });
  await check({ name: 'no bias', B: 1, H: 2, KVH: 2, T: 5, past: 4, D: 8, causal: false });
});

test('sizes that are not multiples of the tiles: D 6, more keys than one tile, more queries than one workgroup', { skip: reason }, async () => {
  assert.equal(keysPerTile(6), 32);
  await check({ name: 'D 6', B: 1, H: 2, KVH: 1, T: 5, past: 0, D: 6, causal: true });
  await check({ name: `T ${ROWS + 3}, S ${ROWS + 3} > ${keysPerTile(4)} keys a tile`, B: 1, H: 1, KVH: 1, T: ROWS + 3, past: 0, D: 4, causal: true });
});

test('scaledDotProductAttention runs the fused kernel on webgpu, with attention dropout too (no separate dropout kernel)', { skip: reason }, async () => {
  const q = tf.randomNormal([1, 2, 6, 8], 0, 1, 'float32', 1) as tf.Tensor4D;
  const k = tf.randomNormal([1, 2, 6, 8], 0, 1, 'float32', 2) as tf.Tensor4D;
  const bias = attentionBias({ queryLength: 6, pastLength: 0, causal: true })!;
  const kernels = async (f: () => tf.Tensor) => (await tf.profile(() => f())).kernelNames;
  for (const dropout of [undefined, { rate: 0.3, seed0: 1, seed1: 2 }]) {
    const names = await kernels(() => scaledDotProductAttention(q, k, k, 0.3, bias, dropout));
    assert.ok(names.includes(PEFTKIT_ATTENTION), `kernels: ${names.join(', ')}`);
    assert.ok(!names.includes('Softmax') && !names.includes(PEFTKIT_DROPOUT), `kernels: ${names.join(', ')}`);
  }
  tf.dispose([q, k, bias]);
});

// Dropout inside the kernel: the mask of seededDropout over [B, H, T, S] (flat index ((b·H + h)·T + t)·S + s).
const drop = (rate: number, seed0 = 0x9e3779b9, seed1 = 7): AttentionDropout => ({ rate, seed0, seed1 });

test('dropout: causal, and padded with a left-padded row whose first queries see no key', { skip: reason }, async () => {
  const row = (pad: number, len: number, left: boolean) => Array.from({ length: len }, (_, i) => (left ? i >= pad : i < len - pad) ? 1 : 0);
  await check({ name: 'causal + dropout', B: 2, H: 2, KVH: 2, T: 12, past: 0, D: 8, causal: true, dropout: drop(0.3) });
  await check({ name: 'padded + dropout', B: 3, H: 2, KVH: 2, T: 10, past: 0, D: 8, causal: true, mask: [row(0, 10, false), row(3, 10, false), row(4, 10, true)], dropout: drop(0.5, 3, 0xffffffff) });
});

test('dropout: grouped-query heads (H 4, KVH 2), causal and padded', { skip: reason }, async () => {
  await check({ name: 'gqa + dropout', B: 2, H: 4, KVH: 2, T: 9, past: 0, D: 16, causal: true, mask: [[1, 1, 1, 1, 1, 1, 1, 1, 1], [1, 1, 1, 1, 1, 1, 0, 0, 0]], dropout: drop(0.2) });
});

test('dropout: S > T (a prefix or cache in front), causal and bidirectional; S not a multiple of 4, so Philox blocks straddle rows', { skip: reason }, async () => {
  await check({ name: 'past causal + dropout', B: 2, H: 4, KVH: 2, T: 7, past: 5, D: 8, causal: true, mask: [Array(12).fill(1), [...Array(10).fill(1), 0, 0]], dropout: drop(0.25) });
  await check({ name: 'past bidirectional + dropout (S 9)', B: 2, H: 2, KVH: 1, T: 6, past: 3, D: 8, causal: false, mask: [Array(9).fill(1), [1, 1, 1, 1, 1, 1, 0, 0, 0]], dropout: drop(0.4, 11, 12) });
});

test('dropout: more keys than a tile and more queries than a workgroup; D 6', { skip: reason }, async () => {
  await check({ name: `T ${ROWS + 3} + dropout`, B: 1, H: 1, KVH: 1, T: ROWS + 3, past: 0, D: 4, causal: true, dropout: drop(0.1) });
  await check({ name: 'D 6, S 5 + dropout', B: 1, H: 2, KVH: 1, T: 5, past: 0, D: 6, causal: false, dropout: drop(0.3) });
});

test('dropout: the same seeds give identical outputs and gradients, other seeds other ones; rate 0 is no dropout', { skip: reason }, async () => {
  const [B, H, T, D] = [1, 2, 8, 8];
  const q = tf.randomNormal([B, H, T, D], 0, 1, 'float32', 21) as tf.Tensor4D;
  const k = tf.randomNormal([B, H, T, D], 0, 1, 'float32', 22) as tf.Tensor4D;
  const v = tf.randomNormal([B, H, T, D], 0, 1, 'float32', 23) as tf.Tensor4D;
  const bias = attentionBias({ queryLength: T, pastLength: 0, causal: true });
  const run = async (d: AttentionDropout | undefined) => {
    const { value, grads } = tf.valueAndGrads((a: tf.Tensor, b: tf.Tensor) => tf.sum(tf.square(fusedAttention(a as tf.Tensor4D, b as tf.Tensor4D, v, 0.35, bias, d))))([q, k]);
    const out = [...(await value.data()), ...(await grads[0].data()), ...(await grads[1].data())];
    tf.dispose([value, ...grads]);
    return out;
  };
  const a = await run(drop(0.3, 5, 6));
  assert.deepEqual(await run(drop(0.3, 5, 6)), a, 'same seeds, same numbers');
  for (const other of [drop(0.3, 6, 6), drop(0.3, 5, 7)]) assert.notDeepEqual(await run(other), a, `seeds ${other.seed0}, ${other.seed1}`);
  assert.deepEqual(await run(drop(0, 5, 6)), await run(undefined), 'rate 0');
  tf.dispose([q, k, v, bias]);
});

/** Loss and gradients of a tiny model in training mode (dropout on) after manualSeed(seed). */
async function trainingGrads(model: PreTrainedModel, ids: tf.Tensor2D, seed: number): Promise<Map<string, tf.Tensor>> {
  manualSeed(seed);
  model.train();
  const vars = model.trainableParameters();
  const { value, grads: g } = tf.variableGrads(() => tf.tidy(() => {
    const logits = model.forward({ inputIds: ids }).logits as tf.Tensor3D;
    return tf.sum(tf.mul(logits, tf.sin(tf.range(0, logits.size).reshape(logits.shape)))) as tf.Scalar;
  }), vars.map(([, v]) => v as tf.Variable));
  const out = new Map<string, tf.Tensor>(vars.map(([n, v]) => [n, g[(v as tf.Variable).name]]));
  out.set('(loss)', value);
  return out;
}

test('a model in training mode with attention dropout: the fused path draws the same seeds and gives the composed path\'s loss and gradients', { skip: reason }, async () => {
  for (const cfg of [{ ...TINY_CONFIGS.gpt2, attn_pdrop: 0.3, resid_pdrop: 0.1, embd_pdrop: 0.1 }, { ...TINY_CONFIGS.llama, attention_dropout: 0.3 }]) {
    manualSeed(1);
    const model = tinyModel(cfg);
    const ids = sampleIds(2, 10, 50, 3);
    const kernels = (await tf.profile(async () => { tf.dispose([...(await trainingGrads(model, ids, 5)).values()]); })).kernels.map((k) => k.name);
    assert.ok(kernels.includes(PEFTKIT_ATTENTION), `${cfg.model_type}: the fused kernel ran`);
    const fused = await trainingGrads(model, ids, 5);
    tf.unregisterKernel(PEFTKIT_ATTENTION, 'webgpu'); // the composed path: attentionReference + seededDropout
    let composed: Map<string, tf.Tensor>;
    try {
      composed = await trainingGrads(model, ids, 5);
    } finally {
      tf.registerKernel(attentionWebGpuConfig);
    }
    assert.ok(fused.size >= 10);
    for (const [n, g] of composed) await assertClose(fused.get(n)!, g, `${cfg.model_type} ${n}`);
    // Without dropout (evaluation mode) the loss differs: the dropout did act.
    model.eval();
    const evalLoss = tf.tidy(() => { const l = model.forward({ inputIds: ids }).logits as tf.Tensor3D; return tf.sum(tf.mul(l, tf.sin(tf.range(0, l.size).reshape(l.shape)))); });
    assert.notEqual((await evalLoss.data())[0], (await fused.get('(loss)')!.data())[0]);
    tf.dispose([...fused.values(), ...composed.values(), ids, evalLoss]);
    model.dispose();
  }
});

test('with gradient checkpointing (the block recomputed in the backward pass) the fused path gives the same gradients, with and without attention dropout', { skip: reason }, async () => {
  for (const attention_dropout of [0, 0.3]) {
    manualSeed(1);
    const plain = tinyModel({ ...TINY_CONFIGS.llama, attention_dropout }); // GQA: the fused kernel runs
    const ckpt = cloneModel(plain);
    assert.ok(ckpt.gradientCheckpointingEnable() > 0);
    const ids = sampleIds(2, 10, 50, 3);
    const kernels = (await tf.profile(async () => { tf.dispose([...(await trainingGrads(ckpt, ids, 9)).values()]); })).kernels.map((k) => k.name);
    assert.ok(kernels.includes(PEFTKIT_ATTENTION), 'the fused kernel ran');
    const [a, b] = [await trainingGrads(plain, ids, 9), await trainingGrads(ckpt, ids, 9)];
    assert.ok(a.size >= 10);
    for (const [n, g] of a) await assertClose(b.get(n)!, g, `dropout ${attention_dropout}: ${n}`, 1e-5);
    tf.dispose([...a.values(), ...b.values(), ids]);
    plain.dispose();
    ckpt.dispose();
  }
});
