/**
 * peftkit's WASM Transpose and Sum overrides (packages/models/src/kernels/wasm/transpose.ts, sum.ts)
 * against the tfjs-backend-wasm kernels they replaced, on the shapes of the main job's training step
 * and a few that each override hands back. Both kernels run in the same process, alternately, on the
 * same input; median of 9 calls after 9 warm-up calls. Prints a markdown table.
 *
 *   PEFTKIT_WASM_THREADS=2 node --conditions=peftkit-source --import tsx tools/bench/wasm-reduce.ts
 *
 * "peftkit" is the registered kernel, so a case it hands back measures the same kernel twice.
 * Benchmarks are measured, never asserted in tests.
 */
import * as tf from '@tensorflow/tfjs';
import { initBackend } from '@peftkit/core';
import '@peftkit/models';
import { replacedKernel } from '../../packages/models/src/kernels/replaced.js';

await initBackend('wasm');
const backend = tf.backend();

function median(f: () => tf.TensorInfo): number {
  const ts: number[] = [];
  for (let i = 0; i < 18; i++) {
    const t0 = performance.now();
    const r = f();
    if (i >= 9) ts.push(performance.now() - t0);
    backend.disposeData(r.dataId);
  }
  return ts.sort((a, b) => a - b)[4];
}

const CASES: [string, number[], tf.NamedAttrMap][] = [
  ['Transpose', [2048, 512], { perm: [1, 0] }],
  ['Transpose', [2048, 128], { perm: [1, 0] }],
  ['Transpose', [4096, 128], { perm: [1, 0] }],
  ['Transpose', [4, 2048, 128], { perm: [0, 2, 1] }],
  ['Transpose', [2032, 128], { perm: [1, 0] }],
  ['Transpose', [128, 4096], { perm: [1, 0] }],
  ['Transpose', [16, 128, 4, 32], { perm: [0, 2, 1, 3] }],
  ['Sum', [2048, 512], { axis: [0], keepDims: false }],
  ['Sum', [16, 128, 128], { axis: [0, 1], keepDims: false }],
  ['Sum', [16, 128, 384], { axis: [0, 1], keepDims: false }],
  ['Sum', [128, 768], { axis: [0], keepDims: false }],
  ['Sum', [64, 128, 128], { axis: [0], keepDims: false }],
  ['Sum', [8, 128, 4096], { axis: [0], keepDims: false }],
];

console.log(`${tf.getBackend()}, PEFTKIT_WASM_THREADS=${process.env.PEFTKIT_WASM_THREADS ?? '(auto)'}\n`);
console.log('| kernel | input | attrs | peftkit ms | tfjs ms | tfjs / peftkit |\n|---|---|---|---:|---:|---:|');
for (const [name, shape, attrs] of CASES) {
  const x = tf.randomNormal(shape);
  const args = { inputs: { x }, backend, attrs };
  const ours = median(() => tf.getKernel(name, 'wasm')!.kernelFunc(args as never) as tf.TensorInfo);
  const theirs = median(() => replacedKernel(name, 'wasm')(args as never) as tf.TensorInfo);
  console.log(`| ${name} | [${shape.join(', ')}] | ${JSON.stringify(attrs)} | ${ours.toFixed(2)} | ${theirs.toFixed(2)} | ${(theirs / ours).toFixed(1)} |`);
  x.dispose();
}
