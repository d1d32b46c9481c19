/**
 * The plain 2-D product `PeftkitMatMul` (a [M, K] · b [K, N], no transpose flags): peftkit's own tiled kernel on
 * WebGPU (webgpu/matmul.ts), tfjs's `matMul` on every other backend. Its gradient (registered once, backend
 * neutral, by ./index.ts) is made of the same plain products: dA = dY · Bᵀ, dB = Aᵀ · dY.
 */
import * as tf from '@tensorflow/tfjs';

/** The kernel's name (registered for `webgpu` only). */
export const PEFTKIT_MATMUL = 'PeftkitMatMul';

/** dA = dY · Bᵀ and dB = Aᵀ · dY, as plain products (the transposes materialised first). */
export const matMulGradConfig: tf.GradConfig = {
  kernelName: PEFTKIT_MATMUL,
  inputsToSave: ['a', 'b'],
  gradFunc: (dy, saved) => {
    const [a, b] = saved as tf.Tensor2D[];
    return {
      a: () => matMul2d(dy as tf.Tensor2D, tf.transpose(b)),
      b: () => matMul2d(tf.transpose(a), dy as tf.Tensor2D),
    };
  },
};

/**
 * a · b for 2-D float32 operands: `PeftkitMatMul` where the backend has it (WebGPU), else `tf.matMul`.
 * @param a - [M, K]
 * @param b - [K, N]
 * @returns [M, N]
 * @throws Error when the inner sizes differ.
 */
export function matMul2d(a: tf.Tensor2D, b: tf.Tensor2D): tf.Tensor2D {
  if (a.dtype === 'float32' && b.dtype === 'float32' && tf.getKernel(PEFTKIT_MATMUL, tf.getBackend())) {
    if (a.shape[1] !== b.shape[0]) throw new Error(`matMul2d: inner sizes differ: a [${a.shape}] · b [${b.shape}]`);
    return tf.engine().runKernel(PEFTKIT_MATMUL, { a, b } as unknown as tf.NamedTensorMap, {}) as tf.Tensor2D;
  }
  return tf.matMul(a, b);
}
