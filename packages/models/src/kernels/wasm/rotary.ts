/**
 * `PeftkitRotary` for the WASM backend (contract: kernels/reference/rotary.ts): one pass over x, the WebAssembly loop of
 * ./rotary-wat.ts over the backend's heap (the composed ops' float32 arithmetic, in their order). Where the backend's
 * memory cannot be found, a JavaScript loop over views of the heap, in float64 rounded once to float32 on the store
 * (within a float32 rounding of the same values).
 */
import * as tf from '@tensorflow/tfjs';
import type { WasmHeapBackend, WasmKernelArgs } from './heap.js';
import { PEFTKIT_ROTARY, type PeftkitRotaryAttrs } from '../rotary.js';
import { rotaryWat } from './rotary-wat.js';
import { kernelModule } from './wasm-module.js';

type RotaryFn = (x: number, cos: number, sin: number, y: number, B: number, H: number, T: number, D: number, csBatch: number, transpose: number) => void;
/** The module bound to the backend's memory, or null where its memory is not found. */
const simdModule = kernelModule<{ rotary: RotaryFn }>('peftkit-rotary.wat', rotaryWat);

function rotaryWasm(args: WasmKernelArgs): tf.TensorInfo {
  const { x, cos, sin } = args.inputs as { x: tf.TensorInfo; cos: tf.TensorInfo; sin: tf.TensorInfo };
  const { transpose } = args.attrs as unknown as PeftkitRotaryAttrs;
  const [B, H, T, D] = x.shape;
  const cb = cos.shape[0];
  if (x.shape.length !== 4 || D % 2 !== 0) throw new Error(`PeftkitRotary: x must be [B, H, T, D] with D even, got [${x.shape}]`);
  const csShape = [cb, 1, T, D];
  if ((cb !== 1 && cb !== B) || !tf.util.arraysEqual(cos.shape, csShape) || !tf.util.arraysEqual(sin.shape, csShape)) {
    throw new Error(`PeftkitRotary: cos and sin must be [${B} or 1, 1, ${T}, ${D}], got [${cos.shape}] and [${sin.shape}]`);
  }
  const backend = args.backend as WasmHeapBackend;
  const out = backend.makeOutput(x.shape, 'float32');
  // Views are taken after makeOutput: allocating may grow the WASM memory and detach older views.
  const xs = backend.typedArrayFromHeap(x), cs = backend.typedArrayFromHeap(cos), ss = backend.typedArrayFromHeap(sin);
  const ys = backend.typedArrayFromHeap(out);
  const simd = simdModule(args.backend)?.rotary;
  if (simd) {
    if (ys.length) simd(xs.byteOffset, cs.byteOffset, ss.byteOffset, ys.byteOffset, B, H, T, D, cb, transpose ? 1 : 0);
    return out;
  }
  const h = D / 2;
  // The transposed map swaps which half's sine multiplies which and the sign: dx1 = dy1 c1 + dy2 s2, dx2 = dy2 c2 − dy1 s1.
  const sign = transpose ? -1 : 1;
  for (let b = 0; b < B; b++) {
    for (let n = 0; n < H; n++) {
      for (let t = 0; t < T; t++) {
        const o = ((b * H + n) * T + t) * D, c = ((cb === 1 ? 0 : b) * T + t) * D;
        const s1 = transpose ? c + h : c, s2 = transpose ? c : c + h;
        for (let i = 0; i < h; i++) {
          const x1 = xs[o + i], x2 = xs[o + h + i];
          ys[o + i] = x1 * cs[c + i] - sign * x2 * ss[s1 + i];
          ys[o + h + i] = x2 * cs[c + h + i] + sign * x1 * ss[s2 + i];
        }
      }
    }
  }
  return out;
}

/** The kernel config, registered by `registerKernels` (kernels/index.ts). */
export const rotaryWasmConfig: tf.KernelConfig = { kernelName: PEFTKIT_ROTARY, backendName: 'wasm', kernelFunc: rotaryWasm as unknown as tf.KernelFunc };
