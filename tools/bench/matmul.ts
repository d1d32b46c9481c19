/**
 * Matrix-product throughput on the WASM backend, by operand layout: why nn/layers.ts folds every
 * product into a plain 2-D matMul without transpose flags, and what peftkit's BatchMatMul kernel
 * (packages/models/src/kernels/wasm/batch-mat-mul.ts) does for the batched and transposed ones.
 *
 *   node --conditions=peftkit-source --import tsx tools/bench/matmul.ts
 *
 * Prints a Markdown table (GFLOP/s, mean of 5 runs after one warm-up) for docs/benchmarks.md: each
 * product with tfjs-backend-wasm's own kernel, then with peftkit's kernels registered.
 */
import * as tf from '@tensorflow/tfjs';
import { initBackend } from '@peftkit/core';
import '@peftkit/models'; // registers peftkit's kernels when the backend is ready
import { replacedKernel } from '../../packages/models/src/kernels/replaced.js';

const info = await initBackend('wasm');
const cases: [string, number[], number[], boolean, boolean][] = [
  ['x·Wᵀ (transposeB), 1024×256 · (4096×256)ᵀ', [1024, 256], [4096, 256], false, true],
  ['x·W (plain), 1024×256 · 256×4096', [1024, 256], [256, 4096], false, false],
  ['dyᵀ·x (transposeA), (1024×4096)ᵀ · 1024×256', [1024, 4096], [1024, 256], true, false],
  ['plain after tf.transpose, 4096×1024 · 1024×256', [4096, 1024], [1024, 256], false, false],
  ['batched 4-D q·kᵀ [8,4,128,64]', [8, 4, 128, 64], [8, 4, 128, 64], false, true],
  ['batched 4-D probs·v [16,4,128,128]·[16,4,128,32]', [16, 4, 128, 128], [16, 4, 128, 32], false, false],
  ['batched 4-D dprobsᵀ·q (transposeA) [16,4,128,128]', [16, 4, 128, 128], [16, 4, 128, 32], true, false],
];

/** GFLOP/s of each case, mean of 5 runs after one warm-up. */
function measure(): { ms: number; gflops: number }[] {
  return cases.map(([, sa, sb, ta, tb]) => {
    const a = tf.randomNormal(sa);
    const b = tf.randomNormal(sb);
    const run = () => tf.tidy(() => tf.matMul(a, b, ta, tb)).dataSync();
    run();
    const t0 = performance.now();
    for (let i = 0; i < 5; i++) run();
    const ms = (performance.now() - t0) / 5;
    tf.dispose([a, b]);
    const m = ta ? sa.at(-1)! : sa.at(-2)!;
    const k = ta ? sa.at(-2)! : sa.at(-1)!;
    const n = tb ? sb.at(-2)! : sb.at(-1)!;
    const batch = sa.slice(0, -2).reduce((p, q) => p * q, 1);
    return { ms, gflops: (2 * batch * m * k * n) / ms / 1e6 };
  });
}

// peftkit's BatchMatMul replaced tfjs's when the backend started; tfjs's own is swapped back in for
// the first column, then peftkit's again.
const peftkit = tf.getKernel(tf.BatchMatMul, 'wasm')!;
const swap = (kernelFunc: tf.KernelFunc) => {
  tf.unregisterKernel(tf.BatchMatMul, 'wasm');
  tf.registerKernel({ kernelName: tf.BatchMatMul, backendName: 'wasm', kernelFunc });
};
swap(replacedKernel(tf.BatchMatMul, 'wasm'));
const before = measure();
swap(peftkit.kernelFunc);
const after = measure();
console.log(`backend: ${info.name} (${info.detail})\n`);
console.log("| product | tfjs's kernel: ms | GFLOP/s | peftkit's kernel: ms | GFLOP/s |\n|---|---:|---:|---:|---:|");
cases.forEach(([name], i) => console.log(`| ${name} | ${before[i].ms.toFixed(1)} | ${before[i].gflops.toFixed(1)} | ${after[i].ms.toFixed(1)} | ${after[i].gflops.toFixed(1)} |`));
