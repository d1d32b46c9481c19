/**
 * The backend-neutral activation kernels: `PeftkitActivation` (y = f(x)) and `PeftkitActivationGrad`
 * (dx = dy · f′(x)) for the activations of kernels/reference/activation.ts (GELU's tanh form, SiLU). nn/activations.ts
 * calls them where the backend has them (WASM) and composes tfjs ops elsewhere.
 *
 * Why kernels: composed, GPT-2's gelu_new is 6 kernels forward and 10 in its derivative over [T, 4C], each a pass
 * over memory; forward and backward took 55 ms of GPT-2 small's LoRA step on WASM (1 x 128; docs/benchmarks.md).
 * A kernel reads x (and dy) once and writes once.
 */
import * as tf from '@tensorflow/tfjs';
import type { ActivationKernelFn } from './reference/activation.js';

export type { ActivationKernelFn };

/** The kernels' names, shared by every backend's configs. */
export const PEFTKIT_ACTIVATION = 'PeftkitActivation';
export const PEFTKIT_ACTIVATION_GRAD = 'PeftkitActivationGrad';

/** The kernels' attrs: which activation. */
export interface PeftkitActivationAttrs {
  fn: ActivationKernelFn;
}

/** Whether the current backend has the activation kernels. */
export function hasActivationKernels(): boolean {
  return Boolean(tf.getKernel(PEFTKIT_ACTIVATION, tf.getBackend()) && tf.getKernel(PEFTKIT_ACTIVATION_GRAD, tf.getBackend()));
}

/**
 * f(x) by the backend's kernel (check {@link hasActivationKernels} first). Not differentiable by itself: the caller's
 * custom gradient calls {@link activationGradKernel}.
 * @param x - float32, any shape
 * @returns float32, x's shape
 */
export function activationKernel(fn: ActivationKernelFn, x: tf.Tensor): tf.Tensor {
  return tf.engine().runKernel(PEFTKIT_ACTIVATION, { x } as unknown as tf.NamedTensorMap, { fn } as unknown as tf.NamedAttrMap) as tf.Tensor;
}

/**
 * dy · f′(x) by the backend's kernel.
 * @param x - float32, any shape
 * @param dy - float32, x's shape
 * @returns float32, x's shape
 */
export function activationGradKernel(fn: ActivationKernelFn, x: tf.Tensor, dy: tf.Tensor): tf.Tensor {
  return tf.engine().runKernel(PEFTKIT_ACTIVATION_GRAD, { x, dy } as unknown as tf.NamedTensorMap, { fn } as unknown as tf.NamedAttrMap) as tf.Tensor;
}
