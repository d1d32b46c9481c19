/**
 * Slice for the WASM backend, reading its input through a view of the WASM heap instead of a copy.
 *
 * Why it matters: tfjs-backend-wasm 4.22's Slice starts with `backend.readSync(x.dataId)`, which
 * copies the *whole* input out of the heap (`HEAPU8.slice`) for every slice taken. Splitting a
 * tensor into n parts therefore copied it n times: taking the 64 per-head slices of GPT-2's
 * [16·4, 128, 128] attention probabilities cost 300 ms (kernels/wasm/batch-mat-mul.ts needs such
 * slices, and GPT-2 splits c_attn's output into q, k and v every layer). This kernel does the same
 * index arithmetic over a view, so a slice costs what its output costs.
 *
 * SplitV (`tf.split`) and Unpack (`tf.unstack`) are replaced too: the backend's versions call its
 * Slice directly, one whole-input copy per part.
 *
 * Reference: the cpu backend's Slice, SplitV and Unpack (same outputs, tested in slice.test.ts).
 */
import * as tf from '@tensorflow/tfjs';
import type { WasmHeapBackend, WasmKernelArgs } from './heap.js';
import { replacedKernel } from '../replaced.js';

function slice(args: WasmKernelArgs): tf.TensorInfo {
  const { x } = args.inputs as { x: tf.TensorInfo };
  const { begin, size } = args.attrs as unknown as tf.SliceAttrs;
  // Strings live outside the heap: the backend's own kernel handles them.
  if (x.dtype === 'string') return replacedKernel(tf.Slice, 'wasm')(args as never) as tf.TensorInfo;
  const [b, s] = tf.slice_util.parseSliceParams(x as tf.Tensor, begin, size);
  const backend = args.backend as WasmHeapBackend;
  const out = backend.makeOutput(s, x.dtype);
  const n = tf.util.sizeFromShape(s);
  if (n === 0) return out;
  // Views are taken after makeOutput: allocating may grow the WASM memory and detach older views.
  const xs = backend.typedArrayFromHeap(x);
  const os = backend.typedArrayFromHeap(out);
  const strides = tf.util.computeStrides(x.shape);
  if (tf.slice_util.isSliceContinous(x.shape, b, s)) {
    const off = tf.slice_util.computeFlatOffset(b, strides);
    os.set(xs.subarray(off, off + n));
    return out;
  }
  // Copy runs of the innermost axis; `idx` walks the outer axes of the output like an odometer.
  const rank = s.length;
  const inner = s[rank - 1];
  const idx = new Array<number>(Math.max(rank - 1, 0)).fill(0);
  for (let o = 0; o < n; o += inner) {
    let src = b[rank - 1];
    for (let d = 0; d < rank - 1; d++) src += (b[d] + idx[d]) * strides[d];
    os.set(xs.subarray(src, src + inner), o);
    for (let d = rank - 2; d >= 0; d--) {
      if (++idx[d] < s[d]) break;
      idx[d] = 0;
    }
  }
  return out;
}

function splitV(args: WasmKernelArgs): tf.TensorInfo[] {
  const { x } = args.inputs as { x: tf.TensorInfo };
  const { numOrSizeSplits, axis } = args.attrs as unknown as tf.SplitVAttrs;
  const ax = tf.util.parseAxisParam(axis, x.shape)[0];
  const sizes = tf.backend_util.prepareSplitSize(x as tf.Tensor, numOrSizeSplits, ax);
  const begin = new Array<number>(x.shape.length).fill(0);
  return sizes.map((part) => {
    const size = [...x.shape];
    size[ax] = part;
    const out = slice({ inputs: { x }, backend: args.backend, attrs: { begin: [...begin], size } });
    begin[ax] += part;
    return out;
  });
}

function unpack(args: WasmKernelArgs): tf.TensorInfo[] {
  const { value } = args.inputs as { value: tf.TensorInfo };
  const rank = value.shape.length;
  let { axis } = args.attrs as unknown as tf.UnpackAttrs;
  if (axis < 0) axis += rank;
  const outShape = value.shape.filter((_, i) => i !== axis);
  const size = [...value.shape];
  size[axis] = 1;
  return Array.from({ length: value.shape[axis] }, (_, i) => {
    const begin = new Array<number>(rank).fill(0);
    begin[axis] = i;
    const { dataId, dtype } = slice({ inputs: { x: value }, backend: args.backend, attrs: { begin, size } });
    return { dataId, dtype, shape: outShape };
  });
}

/** Replace the backend's own Slice, SplitV and Unpack (see `registerKernels`). */
export const sliceWasmConfig: tf.KernelConfig = { kernelName: tf.Slice, backendName: 'wasm', kernelFunc: slice as unknown as tf.KernelFunc };
export const splitVWasmConfig: tf.KernelConfig = { kernelName: tf.SplitV, backendName: 'wasm', kernelFunc: splitV as unknown as tf.KernelFunc };
export const unpackWasmConfig: tf.KernelConfig = { kernelName: tf.Unpack, backendName: 'wasm', kernelFunc: unpack as unknown as tf.KernelFunc };
