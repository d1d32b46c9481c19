/**
 * `PeftkitNorm` and `PeftkitNormGrad` for the WASM backend (contract: kernels/reference/norm.ts): the WebAssembly
 * loops of ./norm-wat.ts over the backend's heap. Where the backend's memory cannot be found, the reference's loops
 * over views of the heap: slower, within float32 rounding of the same values.
 */
import * as tf from '@tensorflow/tfjs';
import type { WasmHeapBackend, WasmKernelArgs } from './heap.js';
import { PEFTKIT_NORM, PEFTKIT_NORM_GRAD, type PeftkitNormAttrs } from '../norm.js';
import { normGradReference, normReference } from '../reference/norm.js';
import { normWat } from './norm-wat.js';
import { kernelModule } from './wasm-module.js';

/** The module's loops bound to the backend's memory, or null where its memory is not found. */
const loops = kernelModule<Record<'ln_fwd' | 'rms_fwd' | 'ln_bwd' | 'rms_bwd', (...args: number[]) => void>>('peftkit-norm.wat', normWat);

/** Rows and D of x [..., D] with float32 x and weight [D] (and the other [D] and [..., 1] inputs named). @throws Error naming what does not fit. */
function shapes(kernel: string, x: tf.TensorInfo, vectors: tf.TensorInfo[], stats: tf.TensorInfo[], like: tf.TensorInfo[]): [number, number] {
  const D = x.shape[x.shape.length - 1] ?? 0;
  const rows = x.shape.length ? tf.util.sizeFromShape(x.shape) / Math.max(D, 1) : 0;
  const statShape = [...x.shape.slice(0, -1), 1];
  const ok =
    x.shape.length >= 1 &&
    [x, ...vectors, ...stats, ...like].every((t) => t.dtype === 'float32') &&
    vectors.every((t) => t.shape.length === 1 && t.shape[0] === D) &&
    stats.every((t) => tf.util.arraysEqual(t.shape, statShape)) &&
    like.every((t) => tf.util.arraysEqual(t.shape, x.shape));
  if (!ok) {
    const all = [x, ...vectors, ...stats, ...like].map((t) => `${t.dtype} [${t.shape}]`).join(', ');
    throw new Error(`${kernel}: float32 x [..., D], [D] weights, [..., 1] statistics and x-shaped gradients expected, got ${all}`);
  }
  return [rows, D];
}

function normWasm(args: WasmKernelArgs): tf.TensorInfo[] {
  const { x, weight, bias } = args.inputs as { x: tf.TensorInfo; weight: tf.TensorInfo; bias?: tf.TensorInfo };
  const { kind, eps } = args.attrs as unknown as PeftkitNormAttrs;
  const layer = kind === 'layer';
  const [rows, D] = shapes(PEFTKIT_NORM, x, layer ? [weight, bias!] : [weight], [], []);
  const backend = args.backend as WasmHeapBackend;
  const statShape = [...x.shape.slice(0, -1), 1];
  const y = backend.makeOutput(x.shape, 'float32');
  const a = backend.makeOutput(statShape, 'float32');
  const b = layer ? backend.makeOutput(statShape, 'float32') : undefined;
  if (rows * D === 0) return b ? [y, a, b] : [y, a];
  // Views are taken after makeOutput: allocating may grow the WASM memory and detach older views.
  const [xs, ws, ys, as] = [x, weight, y, a].map((t) => backend.typedArrayFromHeap(t));
  const bs = bias ? backend.typedArrayFromHeap(bias) : undefined;
  const sbs = b ? backend.typedArrayFromHeap(b) : undefined;
  const ex = loops(args.backend);
  if (!ex) {
    const ref = normReference(kind, xs, rows, D, ws, bs, eps);
    ys.set(ref.y);
    as.set(ref.a);
    sbs?.set(ref.b);
  } else if (layer) ex.ln_fwd(xs.byteOffset, ws.byteOffset, bs!.byteOffset, ys.byteOffset, as.byteOffset, sbs!.byteOffset, rows, D, eps);
  else ex.rms_fwd(xs.byteOffset, ws.byteOffset, ys.byteOffset, as.byteOffset, rows, D, eps);
  return b ? [y, a, b] : [y, a];
}

function normGradWasm(args: WasmKernelArgs): tf.TensorInfo {
  const { x, a, b, weight, dy } = args.inputs as { x: tf.TensorInfo; a: tf.TensorInfo; b?: tf.TensorInfo; weight: tf.TensorInfo; dy: tf.TensorInfo };
  const { kind } = args.attrs as unknown as PeftkitNormAttrs;
  const layer = kind === 'layer';
  const [rows, D] = shapes(PEFTKIT_NORM_GRAD, x, [weight], layer ? [a, b!] : [a], [dy]);
  const backend = args.backend as WasmHeapBackend;
  const dx = backend.makeOutput(x.shape, 'float32');
  if (rows * D === 0) return dx;
  const [xs, as, ws, dys, dxs] = [x, a, weight, dy, dx].map((t) => backend.typedArrayFromHeap(t));
  const bs = b ? backend.typedArrayFromHeap(b) : undefined;
  const ex = loops(args.backend);
  if (!ex) dxs.set(normGradReference(kind, xs, rows, D, ws, as, bs ?? as, dys));
  else if (layer) ex.ln_bwd(xs.byteOffset, as.byteOffset, bs!.byteOffset, ws.byteOffset, dys.byteOffset, dxs.byteOffset, rows, D);
  else ex.rms_bwd(xs.byteOffset, as.byteOffset, ws.byteOffset, dys.byteOffset, dxs.byteOffset, rows, D);
  return dx;
}

/** The kernel configs, registered by `registerKernels` (kernels/index.ts). */
export const normWasmConfig: tf.KernelConfig = { kernelName: PEFTKIT_NORM, backendName: 'wasm', kernelFunc: normWasm as unknown as tf.KernelFunc };
export const normGradWasmConfig: tf.KernelConfig = { kernelName: PEFTKIT_NORM_GRAD, backendName: 'wasm', kernelFunc: normGradWasm as unknown as tf.KernelFunc };
