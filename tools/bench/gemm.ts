/**
 * The matrix-product ceiling: GFLOP/s of `tf.matMul` on the WASM backend at the shapes that dominate the benchmarks'
 * training steps, best of 15 calls (the first ones also wait for V8 to compile the WebAssembly fully: it starts
 * every function in its baseline compiler). The kernel is peftkit's GEMM (packages/models/src/kernels/wasm/gemm.ts;
 * packs both operands on every call, above 4 rows) unless PEFTKIT_WASM_GEMM says otherwise: `xnnpack` measures tfjs-backend-wasm's own
 * (XNNPACK's GEMM, which packs the right operand on the first call and caches it, so its best call is the product
 * alone), `simd` peftkit's without fused multiply-add. tools/bench/gemm_torch.py measures PyTorch's `a @ b` at the
 * same shapes. Threads: PEFTKIT_WASM_THREADS.
 *
 *   PEFTKIT_WASM_THREADS=1 node --conditions=peftkit-source --import tsx tools/bench/gemm.ts
 *   PEFTKIT_WASM_THREADS=1 PEFTKIT_WASM_GEMM=xnnpack node --conditions=peftkit-source --import tsx tools/bench/gemm.ts
 *   /usr/bin/python3 tools/bench/gemm_torch.py 1
 *
 * Prints one JSON line per shape: m, k, n ([m, k] · [k, n]), best ms, GFLOP/s = 2·m·k·n / time.
 */
import * as tf from '@tensorflow/tfjs';
import { initBackend } from '@peftkit/core';
import { wasmGemmInfo } from '@peftkit/models';

/** [m, k, n]: GPT-2 small's c_fc and tied LM head at 128 tokens, the main job's c_fc and LM head at 16 × 128, a square product. */
export const GEMM_SHAPES: [number, number, number][] = [[128, 768, 3072], [128, 768, 50257], [2048, 128, 512], [2032, 128, 4096], [1024, 1024, 1024]];

const info = await initBackend('wasm');
const gemm = wasmGemmInfo();
for (const [m, k, n] of GEMM_SHAPES) {
  const a = tf.randomNormal([m, k]) as tf.Tensor2D;
  const b = tf.randomNormal([k, n]) as tf.Tensor2D;
  let best = Infinity;
  for (let i = 0; i < 15; i++) {
    const t0 = performance.now();
    const y = tf.matMul(a, b);
    y.dataSync();
    best = Math.min(best, performance.now() - t0);
    y.dispose();
  }
  tf.dispose([a, b]);
  console.log(JSON.stringify({ impl: `${gemm.kind === 'xnnpack' ? 'tfjs-wasm XNNPACK' : `peftkit ${gemm.kind}`} (${info.threads ?? 1} threads)`, m, k, n, ms: +best.toFixed(2), gflops: +((2 * m * k * n) / best / 1e6).toFixed(1) }));
}
