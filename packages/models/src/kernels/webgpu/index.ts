/** peftkit's kernels for tfjs's WebGPU backend (registered by ../index.ts when the `webgpu` backend starts). */
import type * as tf from '@tensorflow/tfjs';
import { attentionWebGpuConfig } from './attention.js';
import { dropoutWebGpuConfig } from './dropout.js';
import { matMulWebGpuConfig } from './matmul.js';

export { ATTENTION_KERNEL, attentionWebGpu, attentionWebGpuConfig, keysPerTile, type AttentionAttrs } from './attention.js';
export { MATMUL_KERNEL, matMulWebGpu, matMulWebGpuConfig, rowsPerInvocation, TILE_K } from './matmul.js';
export { DROPOUT_KERNEL, dropoutWebGpu, dropoutWebGpuConfig, PHILOX_WGSL, type DropoutAttrs } from './dropout.js';

/** Kernels the `webgpu` backend gets (none replaces one of tfjs's). */
export const WEBGPU_KERNEL_CONFIGS: readonly tf.KernelConfig[] = [dropoutWebGpuConfig, attentionWebGpuConfig, matMulWebGpuConfig];
