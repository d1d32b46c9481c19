/**
 * Kernels peftkit adds to tfjs backends, in tfjs's kernel-config shape: one kernel per file, one
 * folder per backend (`cpu/`, `wasm/`, `webgpu/`), each tested against the plain-TypeScript
 * reference in `reference/`. Registered from the lists below; registration is idempotent.
 */
import * as tf from '@tensorflow/tfjs';
import { dropoutGradConfig } from './dropout.js';
import { matMulGradConfig } from './matmul.js';
import { dropoutCpuConfig } from './cpu/dropout.js';
import { dropoutWasmConfig } from './wasm/dropout.js';
import { identityConfig } from './wasm/identity.js';
import { sliceWasmConfig, splitVWasmConfig, unpackWasmConfig } from './wasm/slice.js';
import { batchMatMulWasmConfig } from './wasm/batch-mat-mul.js';
import { transposeWasmConfig } from './wasm/transpose.js';
import { sumWasmConfig } from './wasm/sum.js';
import { rememberReplaced } from './replaced.js';
import { unsortedSegmentSumConfig } from './wasm/unsorted-segment-sum.js';
import { gatherV2WasmConfig } from './wasm/gather.js';
import { rotaryWasmConfig } from './wasm/rotary.js';
import { activationGradWasmConfig, activationWasmConfig } from './wasm/activation.js';
import { softmaxXentGradWasmConfig, softmaxXentWasmConfig } from './wasm/softmax-xent.js';
import { normGradWasmConfig, normWasmConfig } from './wasm/norm.js';
import { adamWWasmConfig } from './wasm/adamw.js';
import { rotaryGradConfig } from './rotary.js';
import { WEBGPU_KERNEL_CONFIGS } from './webgpu/index.js';

/**
 * Kernels the backend lacks (tfjs's own, or peftkit's: `PeftkitDropout` for cpu, wasm and webgpu;
 * `PeftkitRotary`, `PeftkitActivation(Grad)`, `PeftkitSoftmaxXent(Grad)`, `PeftkitNorm(Grad)` and `PeftkitAdamW` for wasm; `PeftkitAttention` and `PeftkitMatMul` for webgpu; their gradients, backend-neutral, are in
 * {@link GRADIENT_CONFIGS} or, for attention, a custom gradient in attention.ts).
 */
export const KERNEL_CONFIGS: readonly tf.KernelConfig[] = [unsortedSegmentSumConfig, dropoutCpuConfig, dropoutWasmConfig, rotaryWasmConfig, activationWasmConfig, activationGradWasmConfig, softmaxXentWasmConfig, softmaxXentGradWasmConfig, normWasmConfig, normGradWasmConfig, adamWWasmConfig, ...WEBGPU_KERNEL_CONFIGS];

/**
 * Kernels that replace the backend's own: the same results with less memory (Identity shares
 * instead of copying; Slice, SplitV and Unpack read a view instead of copying their whole input) or faster (BatchMatMul
 * runs peftkit's GEMM, batched and transposed operands included; Transpose moves 32 x 32 tiles instead of
 * single elements; Sum over leading axes reads its input once instead of transposing it; GatherV2 copies whole slices). An override may hand cases back to the
 * kernel it replaced (`replacedKernel`).
 */
export const KERNEL_OVERRIDES: readonly tf.KernelConfig[] = [identityConfig, sliceWasmConfig, splitVWasmConfig, unpackWasmConfig, batchMatMulWasmConfig, transposeWasmConfig, sumWasmConfig, gatherV2WasmConfig];

/** Gradients of peftkit's own kernels (backend-neutral; `PeftkitAttention`'s is a tf.customGrad in attention.ts). */
export const GRADIENT_CONFIGS: readonly tf.GradConfig[] = [dropoutGradConfig, matMulGradConfig, rotaryGradConfig];

/**
 * Registers, for `backend` (all backends when omitted), the kernels tfjs lacks and the overrides
 * (replacing the backend's own once), and the gradients of peftkit's kernels. Given to
 * `onBackendReady` by the package index, so it runs once a backend is chosen.
 */
export function registerKernels(backend?: string): void {
  for (const g of GRADIENT_CONFIGS) if (!tf.getGradient(g.kernelName)) tf.registerGradient(g);
  for (const k of KERNEL_CONFIGS) {
    if (backend !== undefined && k.backendName !== backend) continue;
    if (!tf.getKernel(k.kernelName, k.backendName)) tf.registerKernel(k);
  }
  for (const k of KERNEL_OVERRIDES) {
    if (backend !== undefined && k.backendName !== backend) continue;
    const current = tf.getKernel(k.kernelName, k.backendName);
    if (current?.kernelFunc === k.kernelFunc) continue;
    if (current) {
      rememberReplaced(k.kernelName, k.backendName, current.kernelFunc);
      tf.unregisterKernel(k.kernelName, k.backendName);
    }
    tf.registerKernel(k);
  }
}
