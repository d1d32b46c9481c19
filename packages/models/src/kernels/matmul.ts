/**
 * The plain 2-D product `PeftkitMatMul` (a [M, K] · b [K, N], no transpose flags): peftkit's own tiled kernel on
 * WebGPU (webgpu/matmul.ts), tfjs's `matMul` on every other backend. Its gradient (registered once, backend
 * neutral, by ./index.ts) is made of the same plain products: dA = dY · Bᵀ, dB = Aᵀ · dY.
 */
import * as tf from '@tensorflow/tfjs';
import { ownGemmTakes } from './wasm/batch-mat-mul.js';

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

/**
 * a · b, aᵀ · b, a · bᵀ or aᵀ · bᵀ for 2-D float32 operands. On WASM with peftkit's GEMM (wasm/gemm.ts), which
 * reads transposed operands in place, one BatchMatMul with the flags (a decoding step's few rows included: its
 * few-row path reads the weight once, either layout); everywhere else the transposes are materialised and the
 * product is {@link matMul2d}'s plain one: tfjs-wasm's own kernel runs flagged products in a scalar loop, and the
 * WebGPU kernel takes plain operands only.
 * @param a - [M, K], or [K, M] when `transposeA`
 * @param b - [K, N], or [N, K] when `transposeB`
 * @returns [M, N]
 * @throws Error when the inner sizes differ.
 */
export function matMulTransposed(a: tf.Tensor2D, b: tf.Tensor2D, transposeA: boolean, transposeB: boolean): tf.Tensor2D {
  if (productsTakeTransposes(a.dtype, b.dtype)) return tf.matMul(a, b, transposeA, transposeB);
  return tf.tidy(() => matMul2d(transposeA ? tf.transpose(a) : a, transposeB ? tf.transpose(b) : b));
}

/**
 * Whether a product with transposed operands costs no more than a plain one on the backend now in use: WASM with
 * peftkit's GEMM, whatever the row count (see {@link matMulTransposed}).
 */
export function productsTakeTransposes(dtypeA: tf.DataType = 'float32', dtypeB: tf.DataType = 'float32'): boolean {
  return tf.getBackend() === 'wasm' && ownGemmTakes(dtypeA, dtypeB);
}
