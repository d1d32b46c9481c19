/**
 * `PeftkitDropout` for the WASM backend (contract: kernels/reference/philox.ts): the Philox loop
 * reads x and writes y in the WASM heap directly, so no mask is drawn on the host or uploaded
 * (tfjs's `tf.dropout` fills a `randomUniform` tensor with seedrandom in JavaScript, then runs four
 * more kernels to make and apply the mask). The loop is WebAssembly SIMD (./dropout-wat.ts), 16 elements at a
 * time, in a module that imports the backend's memory; where that memory cannot be found, the JavaScript loop of
 * kernels/cpu/philox-dropout.ts over the same heap.
 */
import * as tf from '@tensorflow/tfjs';
import type { WasmHeapBackend, WasmKernelArgs } from './heap.js';
import { PEFTKIT_DROPOUT, type PeftkitDropoutAttrs } from '../dropout.js';
import { philoxDropoutInto } from '../cpu/philox-dropout.js';
import { dropoutScale, keepThreshold } from '../reference/philox.js';
import { dropoutWat } from './dropout-wat.js';
import { kernelModule } from './wasm-module.js';

type DropoutFn = (x: number, y: number, n: number, t: number, s: number, k0: number, k1: number) => void;
/** The SIMD module bound to the backend's memory, or null where its memory is not found. */
const simdModule = kernelModule<{ dropout: DropoutFn }>('peftkit-dropout.wat', dropoutWat);

function dropoutWasm(args: WasmKernelArgs): tf.TensorInfo {
  const { x } = args.inputs as { x: tf.TensorInfo };
  const { rate, seed0, seed1 } = args.attrs as unknown as PeftkitDropoutAttrs;
  const backend = args.backend as WasmHeapBackend;
  const out = backend.makeOutput(x.shape, 'float32');
  const n = tf.util.sizeFromShape(x.shape);
  if (n === 0) return out;
  // Views are taken after makeOutput: allocating may grow the WASM memory and detach older views.
  const xs = backend.typedArrayFromHeap(x);
  const ys = backend.typedArrayFromHeap(out) as Float32Array;
  const simd = simdModule(args.backend)?.dropout;
  if (simd) simd(xs.byteOffset, ys.byteOffset, n, keepThreshold(rate), dropoutScale(rate), seed0 | 0, seed1 | 0);
  else philoxDropoutInto(xs, ys, n, rate, seed0, seed1);
  return out;
}

/** The kernel config, registered by `registerKernels` (kernels/index.ts). */
export const dropoutWasmConfig: tf.KernelConfig = {
  kernelName: PEFTKIT_DROPOUT,
  backendName: 'wasm',
  kernelFunc: dropoutWasm as unknown as tf.KernelFunc,
};
