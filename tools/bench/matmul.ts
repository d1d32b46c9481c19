/**
 * Matrix-product throughput on the WASM backend, by operand layout: why nn/layers.ts folds every
 * product into a plain 2-D matMul without transpose flags.
 *
 *   node --conditions=peftkit-source --import tsx tools/bench/matmul.ts
 *
 * Prints a Markdown table (GFLOP/s, mean of 5 runs after one warm-up) for docs/benchmarks.md.
 */
import * as tf from '@tensorflow/tfjs';
import { initBackend } from '@peftkit/core';

const info = await initBackend('wasm');
const cases: [string, number[], number[], boolean, boolean][] = [
  ['x·Wᵀ (transposeB), 1024×256 · (4096×256)ᵀ', [1024, 256], [4096, 256], false, true],
  ['x·W (plain), 1024×256 · 256×4096', [1024, 256], [256, 4096], false, false],
  ['dyᵀ·x (transposeA), (1024×4096)ᵀ · 1024×256', [1024, 4096], [1024, 256], true, false],
  ['plain after tf.transpose, 4096×1024 · 1024×256', [4096, 1024], [1024, 256], false, false],
  ['batched 4-D q·kᵀ [8,4,128,64]', [8, 4, 128, 64], [8, 4, 128, 64], false, true],
];
console.log(`backend: ${info.name} (${info.detail})\n`);
console.log('| product | ms | GFLOP/s |\n|---|---:|---:|');
for (const [name, sa, sb, ta, tb] of cases) {
  const a = tf.randomNormal(sa);
  const b = tf.randomNormal(sb);
  const run = () => tf.tidy(() => tf.matMul(a, b, ta, tb)).dataSync();
  run();
  const t0 = performance.now();
  for (let i = 0; i < 5; i++) run();
  const ms = (performance.now() - t0) / 5;
  const m = ta ? sa.at(-1)! : sa.at(-2)!;
  const k = ta ? sa.at(-2)! : sa.at(-1)!;
  const n = tb ? sb.at(-2)! : sb.at(-1)!;
  const batch = sa.slice(0, -2).reduce((p, q) => p * q, 1);
  console.log(`| ${name} | ${ms.toFixed(1)} | ${((2 * batch * m * k * n) / ms / 1e6).toFixed(1)} |`);
}
