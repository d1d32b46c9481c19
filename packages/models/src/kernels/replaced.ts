/**
 * The backends' own kernels that peftkit's overrides replaced (kernels/index.ts `registerKernels`),
 * so that an override can hand the cases it does not improve back to the original.
 */
import type * as tf from '@tensorflow/tfjs';

const replaced = new Map<string, tf.KernelFunc>();

/** Records the backend's own kernel before an override replaces it (first registration only). */
export function rememberReplaced(kernelName: string, backendName: string, kernelFunc: tf.KernelFunc): void {
  const key = `${kernelName}/${backendName}`;
  if (!replaced.has(key)) replaced.set(key, kernelFunc);
}

/**
 * The backend's own kernel that an override replaced.
 * @throws Error when no override replaced `kernelName` on `backendName` (a programming error).
 */
export function replacedKernel(kernelName: string, backendName: string): tf.KernelFunc {
  const k = replaced.get(`${kernelName}/${backendName}`);
  if (!k) throw new Error(`no ${backendName} kernel ${kernelName} was replaced; register the overrides through registerKernels()`);
  return k;
}
