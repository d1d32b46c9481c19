/**
 * Kernels peftkit adds to tfjs backends, in tfjs's kernel-config shape: one kernel per file,
 * registered from the lists below. Registration is idempotent.
 */
import * as tf from '@tensorflow/tfjs';
import { identityConfig } from './identity.js';
import { unsortedSegmentSumConfig } from './unsorted-segment-sum.js';
import { WEBGPU_KERNEL_CONFIGS, registerDropoutGradient } from './webgpu/index.js';

/** Kernels the backend lacks. */
export const KERNEL_CONFIGS: readonly tf.KernelConfig[] = [unsortedSegmentSumConfig, ...WEBGPU_KERNEL_CONFIGS];

/** Kernels that replace the backend's own (same results, less memory). */
export const KERNEL_OVERRIDES: readonly tf.KernelConfig[] = [identityConfig];

/**
 * Registers, for `backend` (all backends when omitted), the kernels tfjs lacks and the overrides
 * (replacing the backend's own once). Given to `onBackendReady` by the package index, so it runs
 * once a backend is chosen.
 */
export function registerKernels(backend?: string): void {
  registerDropoutGradient();
  for (const k of KERNEL_CONFIGS) {
    if (backend !== undefined && k.backendName !== backend) continue;
    if (!tf.getKernel(k.kernelName, k.backendName)) tf.registerKernel(k);
  }
  for (const k of KERNEL_OVERRIDES) {
    if (backend !== undefined && k.backendName !== backend) continue;
    const current = tf.getKernel(k.kernelName, k.backendName);
    if (current?.kernelFunc === k.kernelFunc) continue;
    if (current) tf.unregisterKernel(k.kernelName, k.backendName);
    tf.registerKernel(k);
  }
}
