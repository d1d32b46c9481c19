/**
 * `PeftkitDropout` for the WASM backend (contract: kernels/reference/philox.ts): the Philox loop
 * reads x and writes y in the WASM heap directly, so no mask is drawn on the host or uploaded
 * (tfjs's `tf.dropout` fills a `randomUniform` tensor with seedrandom in JavaScript, then runs four
 * more kernels to make and apply the mask).
 */
import * as tf from '@tensorflow/tfjs';
import type { WasmHeapBackend, WasmKernelArgs } from './heap.js';
import { PEFTKIT_DROPOUT, type PeftkitDropoutAttrs } from '../dropout.js';
import { philoxDropoutInto } from '../cpu/philox-dropout.js';

function dropoutWasm(args: WasmKernelArgs): tf.TensorInfo {
  const { x } = args.inputs as { x: tf.TensorInfo };
  const { rate, seed0, seed1 } = args.attrs as unknown as PeftkitDropoutAttrs;
  const backend = args.backend as WasmHeapBackend;
  const out = backend.makeOutput(x.shape, 'float32');
  const n = tf.util.sizeFromShape(x.shape);
  if (n === 0) return out;
  // Views are taken after makeOutput: allocating may grow the WASM memory and detach older views.
  philoxDropoutInto(backend.typedArrayFromHeap(x), backend.typedArrayFromHeap(out) as Float32Array, n, rate, seed0, seed1);
  return out;
}

/** The kernel config, registered by `registerKernels` (kernels/index.ts). */
export const dropoutWasmConfig: tf.KernelConfig = {
  kernelName: PEFTKIT_DROPOUT,
  backendName: 'wasm',
  kernelFunc: dropoutWasm as unknown as tf.KernelFunc,
};
