/**
 * `PeftkitAdamW` for the WASM backend (contract: kernels/reference/adamw.ts): the WebAssembly loop of ./adamw-wat.ts
 * over the backend's heap; where the backend's memory cannot be found, the reference's loop over views of the heap
 * (the same bits, slower).
 */
import * as tf from '@tensorflow/tfjs';
import type { WasmHeapBackend, WasmKernelArgs } from './heap.js';
import { PEFTKIT_ADAMW, type AdamWScalars } from '../adamw.js';
import { adamWReference } from '../reference/adamw.js';
import { adamWWat } from './adamw-wat.js';
import { kernelModule } from './wasm-module.js';

/** The module bound to the backend's memory, or null where its memory is not found. */
const simdModule = kernelModule<{ adamw: (...args: number[]) => void }>('peftkit-adamw.wat', adamWWat);

function adamWWasm(args: WasmKernelArgs): tf.TensorInfo[] {
  const { p, g, m, v } = args.inputs as Record<'p' | 'g' | 'm' | 'v', tf.TensorInfo>;
  const s = args.attrs as unknown as AdamWScalars;
  if (![g, m, v].every((t) => tf.util.arraysEqual(t.shape, p.shape)) || ![p, g, m, v].every((t) => t.dtype === 'float32')) {
    throw new Error(`${PEFTKIT_ADAMW}: float32 p, g, m and v of one shape expected, got ${[p, g, m, v].map((t) => `${t.dtype} [${t.shape}]`).join(', ')}`);
  }
  const backend = args.backend as WasmHeapBackend;
  const outs = [backend.makeOutput(p.shape, 'float32'), backend.makeOutput(p.shape, 'float32'), backend.makeOutput(p.shape, 'float32')];
  const n = tf.util.sizeFromShape(p.shape);
  if (n === 0) return outs;
  // Views are taken after makeOutput: allocating may grow the WASM memory and detach older views.
  const [ps, gs, ms, vs, po, mo, vo] = [p, g, m, v, ...outs].map((t) => backend.typedArrayFromHeap(t));
  const fn = simdModule(args.backend)?.adamw;
  if (fn) {
    const f = Math.fround;
    fn(ps.byteOffset, gs.byteOffset, ms.byteOffset, vs.byteOffset, po.byteOffset, mo.byteOffset, vo.byteOffset, n,
      f(s.beta1), f(1 - s.beta1), f(s.beta2), f(1 - s.beta2), f(s.epsilon), f(s.decay), f(s.bc2Sqrt), f(s.stepSize));
  } else {
    const r = adamWReference(ps, gs, ms, vs, s);
    po.set(r.p);
    mo.set(r.m);
    vo.set(r.v);
  }
  return outs;
}

/** The kernel config, registered by `registerKernels` (kernels/index.ts). */
export const adamWWasmConfig: tf.KernelConfig = { kernelName: PEFTKIT_ADAMW, backendName: 'wasm', kernelFunc: adamWWasm as unknown as tf.KernelFunc };
