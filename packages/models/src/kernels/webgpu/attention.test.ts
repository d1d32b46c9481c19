// PeftkitAttention on WebGPU (llvmpipe where there is no GPU) against the composed path it replaces
// (../reference/attention.ts): outputs and the gradients of q, k and v, relative 1e-4. Own process: tfjs's backend is global.
import assert from 'node:assert/strict';
import { before, test } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { initBackend, webgpuUnavailable } from '@peftkit/core';
import '../../index.js'; // registers peftkit's kernels when a backend starts
import { attentionBias, scaledDotProductAttention } from '../../architectures/attention.js';
import { fusedAttention, fusedAttentionApplies, PEFTKIT_ATTENTION } from '../attention.js';
import { attentionReference } from '../reference/attention.js';
import { keysPerTile, ROWS } from './attention.js';
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
}

/** Runs one case through the fused op and the reference: outputs and d(sum(out ∘ w))/d(q, k, v). */
async function check(c: Case): Promise<void> {
  const S = c.past + c.T;
  const q = tf.randomNormal([c.B, c.H, c.T, c.D], 0, 1, 'float32', 11) as tf.Tensor4D;
  const k = tf.randomNormal([c.B, c.KVH, S, c.D], 0, 1, 'float32', 12) as tf.Tensor4D;
  const v = tf.randomNormal([c.B, c.KVH, S, c.D], 0, 1, 'float32', 13) as tf.Tensor4D;
  const w = tf.randomNormal([c.B, c.H, c.T, c.D], 0, 1, 'float32', 14);
  const mask = c.mask ? (tf.tensor2d(c.mask, [c.B, S], 'int32') as tf.Tensor2D) : undefined;
  const bias = attentionBias({ queryLength: c.T, pastLength: c.past, attentionMask: mask, causal: c.causal });
  const scale = 1 / Math.sqrt(c.D);
  assert.ok(fusedAttentionApplies(q, k, v, bias), `${c.name}: the fused kernel takes these shapes`);
  const loss = (f: typeof fusedAttention) => (a: tf.Tensor, b: tf.Tensor, d: tf.Tensor) => tf.sum(tf.mul(f(a as tf.Tensor4D, b as tf.Tensor4D, d as tf.Tensor4D, scale, bias), w));
  const fused = fusedAttention(q, k, v, scale, bias); // tape off: the output-only variant
  const ref = attentionReference(q, k, v, scale, bias);
  await assertClose(fused, ref, `${c.name}: output`);
  const gFused = tf.grads(loss(fusedAttention))([q, k, v]); // tape on: the variant with row statistics
  const gRef = tf.grads(loss((a, b, d, s, m) => attentionReference(a, b, d, s, m)))([q, k, v]);
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

test('scaledDotProductAttention runs the fused kernel on webgpu without dropout, and the composed path with it', { skip: reason }, async () => {
  const q = tf.randomNormal([1, 2, 6, 8], 0, 1, 'float32', 1) as tf.Tensor4D;
  const k = tf.randomNormal([1, 2, 6, 8], 0, 1, 'float32', 2) as tf.Tensor4D;
  const bias = attentionBias({ queryLength: 6, pastLength: 0, causal: true })!;
  const kernels = async (f: () => tf.Tensor) => (await tf.profile(() => f())).kernelNames;
  const plain = await kernels(() => scaledDotProductAttention(q, k, k, 0.3, bias));
  assert.ok(plain.includes(PEFTKIT_ATTENTION), `kernels: ${plain.join(', ')}`);
  assert.ok(!plain.includes('Softmax'), `kernels: ${plain.join(', ')}`);
  const dropped = await kernels(() => scaledDotProductAttention(q, k, k, 0.3, bias, (p) => tf.mul(p, 2)));
  assert.ok(!dropped.includes(PEFTKIT_ATTENTION) && dropped.includes('Softmax'), `kernels: ${dropped.join(', ')}`);
  tf.dispose([q, k, bias]);
});

test('with gradient checkpointing (the block recomputed in the backward pass) the fused path gives the same gradients', { skip: reason }, async () => {
  manualSeed(1);
  const plain = tinyModel({ ...TINY_CONFIGS.llama, attention_dropout: 0 }); // GQA, no attention dropout: the fused kernel runs
  const ckpt = cloneModel(plain);
  assert.ok(ckpt.gradientCheckpointingEnable() > 0);
  const ids = sampleIds(2, 10, 50, 3);
  const grads = async (model: PreTrainedModel) => {
    model.train();
    const vars = model.trainableParameters();
    const { value, grads: g } = tf.variableGrads(() => tf.tidy(() => {
      const logits = model.forward({ inputIds: ids }).logits as tf.Tensor3D;
      return tf.sum(tf.mul(logits, tf.sin(tf.range(0, logits.size).reshape(logits.shape)))) as tf.Scalar;
    }), vars.map(([, v]) => v as tf.Variable));
    const out = new Map<string, tf.Tensor>(vars.map(([n, v]) => [n, g[(v as tf.Variable).name]]));
    value.dispose();
    return out;
  };
  const kernels = (await tf.profile(async () => { tf.dispose([...(await grads(ckpt)).values()]); })).kernels.map((k) => k.name);
  assert.ok(kernels.includes(PEFTKIT_ATTENTION), 'the fused kernel ran');
  const [a, b] = [await grads(plain), await grads(ckpt)];
  assert.ok(a.size >= 10);
  for (const [n, g] of a) await assertClose(b.get(n)!, g, n, 1e-5);
  tf.dispose([...a.values(), ...b.values(), ids]);
  plain.dispose();
  ckpt.dispose();
});
