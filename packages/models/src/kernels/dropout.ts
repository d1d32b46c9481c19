/**
 * The backend-neutral dropout op: `PeftkitDropout` (contract and reference in
 * kernels/reference/philox.ts). Each backend's kernel computes y = keep ? x / (1 - rate) : 0 with
 * Philox4x32-10 keyed by (seed0, seed1); the mask is never stored, and the gradient is the same
 * kernel applied to dy with the same attrs (the mask is recomputed from the counter).
 *
 * Backends without the kernel (tfjs-node, WebGL) get the same numbers from the JavaScript loop on
 * the host, uploaded: slower, identical.
 */
import * as tf from '@tensorflow/tfjs';
import { philoxDropoutInto } from './cpu/philox-dropout.js';

/** The kernel's name, shared by every backend's config. */
export const PEFTKIT_DROPOUT = 'PeftkitDropout';

/** The kernel's attrs: drop probability in [0, 1) and the two uint32 key words. */
export interface PeftkitDropoutAttrs {
  rate: number;
  seed0: number;
  seed1: number;
}

/** dL/dx = PeftkitDropout(dy) with the same attrs: the mask and scale are the forward's. */
export const dropoutGradConfig: tf.GradConfig = {
  kernelName: PEFTKIT_DROPOUT,
  inputsToSave: [],
  gradFunc: (dy, _saved, attrs) => ({ x: () => peftkitDropout(dy as tf.Tensor, attrs as unknown as PeftkitDropoutAttrs) }),
};

/** The host path for backends without the kernel (the gradient is registered, so it still flows). */
function hostDropout(x: tf.Tensor, attrs: PeftkitDropoutAttrs): tf.Tensor {
  const f = tf.customGrad(((xx: tf.Tensor) => {
    const y = new Float32Array(xx.size);
    philoxDropoutInto(xx.dataSync(), y, xx.size, attrs.rate, attrs.seed0, attrs.seed1);
    return { value: tf.tensor(y, xx.shape, 'float32'), gradFunc: (dy: tf.Tensor) => hostDropout(dy, attrs) };
  }) as unknown as Parameters<typeof tf.customGrad>[0]);
  return f(x) as tf.Tensor;
}

function peftkitDropout(x: tf.Tensor, attrs: PeftkitDropoutAttrs): tf.Tensor {
  if (tf.getKernel(PEFTKIT_DROPOUT, tf.getBackend())) {
    return tf.engine().runKernel(PEFTKIT_DROPOUT, { x } as unknown as tf.NamedTensorMap, attrs as unknown as tf.NamedAttrMap) as tf.Tensor;
  }
  return hostDropout(x, attrs);
}

/**
 * Inverted dropout with a counter-based mask (Philox4x32-10; kernels/reference/philox.ts).
 *
 * @param x any shape; cast to float32
 * @param rate drop probability in [0, 1); 0 returns x itself
 * @param seed0 first key word (uint32)
 * @param seed1 second key word (uint32)
 * @returns float32, x's shape: x / (1 - rate) where kept, 0 where dropped
 * @throws RangeError when rate is outside [0, 1)
 */
export function seededDropout(x: tf.Tensor, rate: number, seed0: number, seed1: number): tf.Tensor {
  if (!(rate >= 0 && rate < 1)) throw new RangeError(`dropout rate must be in [0, 1), got ${rate}`);
  if (rate === 0) return x;
  return tf.tidy(() => peftkitDropout(x.dtype === 'float32' ? x : x.cast('float32'), { rate, seed0: seed0 >>> 0, seed1: seed1 >>> 0 }));
}
