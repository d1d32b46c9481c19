/**
 * Dropout on the WASM backend: tfjs's `tf.dropout` (a `randomUniform` mask filled with seedrandom
 * in JavaScript, uploaded, then four kernels) against peftkit's `PeftkitDropout` kernel (Philox
 * over the WASM heap, packages/models/src/kernels/wasm/dropout.ts), on GPT-2 small's attention
 * probabilities for batch 4 x 128 ([4, 12, 128, 128], 786k elements), forward only.
 *
 *   node --conditions=peftkit-source --import tsx tools/bench/dropout.ts
 *
 * Prints a Markdown table (ms, mean of 5 runs after one warm-up) for docs/benchmarks.md.
 */
import * as tf from '@tensorflow/tfjs';
import { initBackend } from '@peftkit/core';
import { seededDropout } from '@peftkit/models';

const info = await initBackend('wasm');
const x = tf.randomNormal([4, 12, 128, 128]);
const cases: [string, () => tf.Tensor][] = [
  ['tf.dropout (randomUniform on the host)', () => tf.dropout(x, 0.1, undefined, 7)],
  ['PeftkitDropout (Philox kernel)', () => seededDropout(x, 0.1, 7, 8)],
];
console.log(`backend: ${info.name} (${info.detail})\n`);
console.log('| dropout of [4, 12, 128, 128] | ms | kernels |\n|---|---:|---:|');
for (const [name, f] of cases) {
  const run = () => tf.tidy(() => f()).dataSync();
  run();
  const t0 = performance.now();
  for (let i = 0; i < 5; i++) run();
  const ms = (performance.now() - t0) / 5;
  const { kernelNames } = await tf.profile(() => f());
  console.log(`| ${name} | ${ms.toFixed(1)} | ${kernelNames.length} |`);
}
