/**
 * peftkit's WebGPU kernels against what they replace, on the same backend: `PeftkitMatMul` (packages/models/src/
 * kernels/webgpu/matmul.ts) against tfjs's MatMul, and `PeftkitAttention` (kernels/webgpu/attention.ts) against
 * the composed path (kernels/reference/attention.ts): the forward pass without and with attention dropout (the
 * composed path then runs `PeftkitDropout` on the probabilities), and a training step's forward + backward (the
 * gradients of q, k and v) with dropout.
 *
 *   node --conditions=peftkit-source --import tsx tools/bench/webgpu-kernels.ts [--small] [--iters 10] [--json out.json]
 *
 * On a real GPU it times the training shapes (4096³, GPT-2 small's LM head and its gradient at 2048 tokens,
 * attention at 8 × 12 heads × 512 × 64, dropout 0.1 as GPT-2's attn_pdrop). On a software adapter (llvmpipe) it
 * switches to small shapes by itself: there the figures check that the kernels run and agree, they say nothing
 * about speed. Each row: mean wall time per call over `--iters` calls after one warm-up (the last result read
 * back, so the queue is drained), the rate in TFLOP/s (2·M·K·N for a product; 4·B·H·T·S·D for an attention
 * forward and 2.5 times that for forward + backward, FlashAttention's convention, causal masking not discounted),
 * and the largest difference from the other path relative to its largest magnitude. tools/bench/gpu/run.sh runs
 * it on the lent GPU machine after the training benchmark.
 */
import { parseArgs } from 'node:util';
import * as tf from '@tensorflow/tfjs';
import { initBackend } from '@peftkit/core';
import { writeJsonAtomic } from '@peftkit/core';
import { attentionReference, fusedAttention, matMul2d, seededDropout } from '@peftkit/models';
import { attentionBias } from '../../packages/models/src/architectures/attention.js';

const { values: args } = parseArgs({ options: { small: { type: 'boolean', default: false }, iters: { type: 'string' }, json: { type: 'string' } } });
const info = await initBackend('webgpu');
const small = args.small || !!info.adapter?.software;
const iters = Number(args.iters ?? (small ? 3 : 10));
console.log(`backend: ${info.name} (${info.detail}); adapter: ${info.adapter ? `${info.adapter.device || info.adapter.description} (${info.adapter.dawnBackend}${info.adapter.software ? ', software' : ''})` : '?'}`);
console.log(small ? 'small shapes (software adapter or --small): a correctness run, not a speed figure\n' : '');

/** Mean ms per call of `f` over `iters` calls after one warm-up; the last output is read back. */
async function time(f: () => tf.Tensor): Promise<number> {
  const warm = tf.tidy(f);
  await warm.data();
  warm.dispose();
  const t0 = performance.now();
  let last: tf.Tensor | undefined;
  for (let i = 0; i < iters; i++) {
    last?.dispose();
    last = tf.tidy(f);
  }
  await last!.data();
  last!.dispose();
  return (performance.now() - t0) / iters;
}

/** max |a − b| / max |b|. */
async function relDiff(a: tf.Tensor, b: tf.Tensor): Promise<number> {
  const [x, y] = [(await a.data()) as Float32Array, (await b.data()) as Float32Array];
  let d = 0;
  let s = 0;
  for (let i = 0; i < y.length; i++) {
    d = Math.max(d, Math.abs(x[i] - y[i]));
    s = Math.max(s, Math.abs(y[i]));
  }
  return d / s;
}

/** One row of the table, as --json writes it. */
interface Row {
  case: string;
  flops: number;
  peftkitMs: number;
  tfjsMs: number;
  maxRelDiff: number;
}
const rows: Row[] = [];
async function row(name: string, flops: number, ours: () => tf.Tensor, theirs: () => tf.Tensor): Promise<void> {
  const [a, b] = [tf.tidy(ours), tf.tidy(theirs)];
  const diff = await relDiff(a, b);
  tf.dispose([a, b]);
  const [tOurs, tTheirs] = [await time(ours), await time(theirs)];
  const rate = (ms: number) => (flops / ms / 1e9).toFixed(small ? 4 : 2);
  rows.push({ case: name, flops, peftkitMs: tOurs, tfjsMs: tTheirs, maxRelDiff: diff });
  console.log(`| ${name} | ${tOurs.toFixed(2)} | ${tTheirs.toFixed(2)} | ${rate(tOurs)} | ${rate(tTheirs)} | ${diff.toExponential(1)} |`);
}

console.log('| case | peftkit ms | tfjs ms | peftkit TFLOP/s | tfjs TFLOP/s | max rel diff |\n|---|---:|---:|---:|---:|---:|');
const products: [string, number, number, number][] = small
  ? [['130·67·259 (odd)', 130, 67, 259], ['256³', 256, 256, 256], ['LM head shape, shrunk 64·48·1001', 64, 48, 1001]]
  : [['4096³', 4096, 4096, 4096], ['GPT-2 LM head 2048·768·50257', 2048, 768, 50257], ['its dx 2048·50257·768', 2048, 50257, 768], ['c_attn 4096·768·2304', 4096, 768, 2304]];
for (const [name, M, K, N] of products) {
  const a = tf.randomNormal([M, K], 0, 1, 'float32', 1) as tf.Tensor2D;
  const b = tf.randomNormal([K, N], 0, 1, 'float32', 2) as tf.Tensor2D;
  await row(`matmul ${name}`, 2 * M * K * N, () => matMul2d(a, b), () => tf.matMul(a, b));
  tf.dispose([a, b]);
}
const [B, H, T, D] = small ? [1, 2, 32, 16] : [8, 12, 512, 64];
const q = tf.randomNormal([B, H, T, D], 0, 1, 'float32', 3) as tf.Tensor4D;
const k = tf.randomNormal([B, H, T, D], 0, 1, 'float32', 4) as tf.Tensor4D;
const v = tf.randomNormal([B, H, T, D], 0, 1, 'float32', 5) as tf.Tensor4D;
const bias = attentionBias({ queryLength: T, pastLength: 0, causal: true });
const scale = 1 / Math.sqrt(D);
const flops = 4 * B * H * T * T * D;
const shape = `[${B}, ${H}, ${T}, ${D}]`;
await row(`attention forward, causal, ${shape}`, flops, () => fusedAttention(q, k, v, scale, bias), () => attentionReference(q, k, v, scale, bias));
// GPT-2's attn_pdrop; the same mask on both paths (seededDropout's Philox contract), so the outputs agree.
const drop = { rate: 0.1, seed0: 1234, seed1: 5678 };
const composedDrop = (p: tf.Tensor) => seededDropout(p, drop.rate, drop.seed0, drop.seed1);
await row(`attention forward, causal, dropout 0.1, ${shape}`, flops, () => fusedAttention(q, k, v, scale, bias, drop), () => attentionReference(q, k, v, scale, bias, composedDrop));
// A training step's share: the output and dq, dk, dv of sum(out ∘ w), stacked into one tensor to read back.
const w = tf.randomNormal([B, H, T, D], 0, 1, 'float32', 6);
const step = (f: (a: tf.Tensor4D, b: tf.Tensor4D, c: tf.Tensor4D) => tf.Tensor4D) => () => {
  const { value, grads } = tf.valueAndGrads((a: tf.Tensor, b: tf.Tensor, c: tf.Tensor) => tf.sum(tf.mul(f(a as tf.Tensor4D, b as tf.Tensor4D, c as tf.Tensor4D), w)))([q, k, v]);
  return tf.concat([value.reshape([1]), ...grads.map((g) => g.reshape([-1]))]);
};
await row(
  `attention forward + backward, causal, dropout 0.1, ${shape}`,
  2.5 * flops,
  step((a, b, c) => fusedAttention(a, b, c, scale, bias, drop)),
  step((a, b, c) => attentionReference(a, b, c, scale, bias, composedDrop)),
);
tf.dispose([q, k, v, w, bias]);
if (args.json) {
  writeJsonAtomic(args.json, { backend: `${info.name} (${info.detail})`, adapter: info.adapter, small, iters, date: new Date().toISOString(), rows });
  console.log(`\nwrote ${args.json}`);
}
