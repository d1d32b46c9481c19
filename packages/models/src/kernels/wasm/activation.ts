/**
 * `PeftkitActivation` and `PeftkitActivationGrad` for the WASM backend (contract: kernels/reference/activation.ts):
 * WebAssembly SIMD loops (./activation-wat.ts) in a module that imports the backend's memory, so they read and write
 * the tensors in place. Where that memory cannot be found (another tfjs-backend-wasm version), the reference's loops
 * over views of the heap: slower, within float32 rounding of the same values.
 */
import * as tf from '@tensorflow/tfjs';
import type { WasmHeapBackend, WasmKernelArgs } from './heap.js';
import { PEFTKIT_ACTIVATION, PEFTKIT_ACTIVATION_GRAD, type PeftkitActivationAttrs } from '../activation.js';
import { activationWat } from './activation-wat.js';
import { activationGradReference, activationReference } from '../reference/activation.js';
import { kernelModule } from './wasm-module.js';

/** The module's loops bound to the backend's memory, or null where its memory is not found. */
const loops = kernelModule<Record<string, (...offsets: number[]) => void>>('peftkit-activation.wat', activationWat);

function float32Input(t: tf.TensorInfo, kernel: string): void {
  if (t.dtype !== 'float32') throw new Error(`${kernel}: float32 input expected, got ${t.dtype}`);
}

function knownFn(fn: string, kernel: string): void {
  if (fn !== 'gelu_tanh' && fn !== 'silu') throw new Error(`${kernel}: no kernel for "${fn}" (gelu_tanh, silu)`);
}

function activationWasm(args: WasmKernelArgs): tf.TensorInfo {
  const { x } = args.inputs as { x: tf.TensorInfo };
  const { fn } = args.attrs as unknown as PeftkitActivationAttrs;
  knownFn(fn, PEFTKIT_ACTIVATION);
  float32Input(x, PEFTKIT_ACTIVATION);
  const backend = args.backend as WasmHeapBackend;
  const out = backend.makeOutput(x.shape, 'float32');
  const n = tf.util.sizeFromShape(x.shape);
  if (n === 0) return out;
  // Views and offsets are taken after makeOutput, which may grow the memory and detach older views.
  const xs = backend.typedArrayFromHeap(x), ys = backend.typedArrayFromHeap(out);
  const ex = loops(args.backend);
  if (ex) ex[fn](xs.byteOffset, ys.byteOffset, n);
  else ys.set(activationReference(fn, xs));
  return out;
}

function activationGradWasm(args: WasmKernelArgs): tf.TensorInfo {
  const { x, dy } = args.inputs as { x: tf.TensorInfo; dy: tf.TensorInfo };
  const { fn } = args.attrs as unknown as PeftkitActivationAttrs;
  knownFn(fn, PEFTKIT_ACTIVATION_GRAD);
  float32Input(x, PEFTKIT_ACTIVATION_GRAD);
  float32Input(dy, PEFTKIT_ACTIVATION_GRAD);
  if (!tf.util.arraysEqual(x.shape, dy.shape)) throw new Error(`${PEFTKIT_ACTIVATION_GRAD}: x [${x.shape}] and dy [${dy.shape}] differ in shape`);
  const backend = args.backend as WasmHeapBackend;
  const out = backend.makeOutput(x.shape, 'float32');
  const n = tf.util.sizeFromShape(x.shape);
  if (n === 0) return out;
  const xs = backend.typedArrayFromHeap(x), gs = backend.typedArrayFromHeap(dy), ys = backend.typedArrayFromHeap(out);
  const ex = loops(args.backend);
  if (ex) ex[`${fn}_grad`](xs.byteOffset, gs.byteOffset, ys.byteOffset, n);
  else ys.set(activationGradReference(fn, xs, gs));
  return out;
}

/** The kernel configs, registered by `registerKernels` (kernels/index.ts). */
export const activationWasmConfig: tf.KernelConfig = { kernelName: PEFTKIT_ACTIVATION, backendName: 'wasm', kernelFunc: activationWasm as unknown as tf.KernelFunc };
export const activationGradWasmConfig: tf.KernelConfig = { kernelName: PEFTKIT_ACTIVATION_GRAD, backendName: 'wasm', kernelFunc: activationGradWasm as unknown as tf.KernelFunc };
