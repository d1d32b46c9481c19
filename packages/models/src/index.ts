/**
 * @peftkit/models: Hugging Face architectures on TensorFlow.js, addressed by their HF parameter
 * names, with checkpoint and tokenizer I/O.
 */
export * from './nn/index.js';
export * from './model.js';
export * from './tokenizer/tokenizer.js';
export * from './peft/peft-model.js';
export * from './peft/mixed-batch.js';
export * from './peft/modules-to-save.js';
export * from './peft/inspect.js';
export * from './peft/serve.js';
export * from './peft/prompt-format.js';
export * from './peft/hf-adapter-io.js';
export * from './peft/target-names.js';
export * from './io/safetensors.js';
export * from './tokenizer/hf-tokenizer.js';
export * from './tokenizer/load.js';
export { gpt2TokenizerJson, wordPieceTokenizerJson, type TokenizerJson, type AddedTokenJson } from './tokenizer/convert.js';
export * from './io/hub.js';
export * from './io/checkpoint.js';
export * from './architectures/index.js';
export * from './generation.js';
export { registerKernels, KERNEL_CONFIGS, KERNEL_OVERRIDES, GRADIENT_CONFIGS } from './kernels/index.js';
export { seededDropout, PEFTKIT_DROPOUT, type PeftkitDropoutAttrs } from './kernels/dropout.js';
export { fusedAttention, fusedAttentionApplies, PEFTKIT_ATTENTION, type AttentionDropout, type PeftkitAttentionAttrs } from './kernels/attention.js';
export { attentionReference } from './kernels/reference/attention.js';
export { matMul2d, matMulTransposed, productsTakeTransposes, PEFTKIT_MATMUL } from './kernels/matmul.js';
export { wasmGemmInfo, requestedWasmGemm, WASM_GEMM_ENV, type WasmGemmKind } from './kernels/wasm/gemm.js';
export { lmHeadCrossEntropy, defaultChunkRows, type LmHeadCrossEntropyOptions } from './kernels/lm-head-cross-entropy.js';
export { adamWKernel, hasAdamWKernel, PEFTKIT_ADAMW, type AdamWScalars } from './kernels/adamw.js';
// Once a backend is chosen: the WASM backend gets UnsortedSegmentSum (the gather gradient) and a
// copy-free Identity (what tfjs saves for gradients goes through it).
import { claimWasmThreads, onBackendReady as onBackendReadyForKernels } from '@peftkit/core';
import { registerKernels as registerKernelsOnReady } from './kernels/index.js';
import { requestedWasmGemm, wasmGemmInfo } from './kernels/wasm/gemm.js';
// peftkit's GEMM runs the WASM threads itself: XNNPACK's pool keeps one (a bad PEFTKIT_WASM_GEMM is reported where the GEMM starts).
claimWasmThreads(() => {
  try {
    return requestedWasmGemm() !== 'xnnpack';
  } catch {
    return false;
  }
});
onBackendReadyForKernels((backend) => {
  registerKernelsOnReady(backend);
  if (backend !== 'wasm') return;
  const g = wasmGemmInfo();
  return g.kind === 'xnnpack' ? 'products: XNNPACK' : `products: peftkit's GEMM (${g.kind === 'fma' ? 'relaxed-SIMD FMA' : 'SIMD'}, ${g.threads} thread${g.threads === 1 ? '' : 's'})`;
});
