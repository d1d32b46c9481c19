/**
 * GatherV2 (`tf.gather`) for the WASM backend, copying whole slices through views of the WASM heap.
 *
 * Why: tfjs-backend-wasm 4.22's Gather computes every output element's source by converting its flat index to
 * coordinates one element at a time, allocating as it goes: an embedding lookup of 128 tokens in GPT-2 small's
 * [50257, 768] table took 4.7 ms, twice a training step (wte and wpe). Here each looked-up slice is one
 * `TypedArray.set`, a few microseconds for the same lookup.
 *
 * Semantics: TensorFlow's `gather(x, indices, axis, batch_dims)`. With x viewed as [batch, outer, dim, slice] and
 * indices as [batch, n] (`collectGatherOpShapeInfo`), out[b, o, i, :] = x[b, o, indices[b, i], :]. An index outside
 * [0, dim) throws, as the backend's own kernel does. Strings live outside the heap: the backend's own kernel handles
 * them. Reference: the cpu backend's GatherV2 (gather.test.ts compares them).
 */
import * as tf from '@tensorflow/tfjs';
import type { WasmHeapBackend, WasmKernelArgs } from './heap.js';
import { replacedKernel } from '../replaced.js';

function gatherV2(args: WasmKernelArgs): tf.TensorInfo {
  const { x, indices } = args.inputs as { x: tf.TensorInfo; indices: tf.TensorInfo };
  const { axis, batchDims } = args.attrs as unknown as tf.GatherV2Attrs;
  if (x.dtype === 'string') return replacedKernel(tf.GatherV2, 'wasm')(args as never) as tf.TensorInfo;
  const backend = args.backend as WasmHeapBackend;
  const ax = tf.util.parseAxisParam(axis, x.shape)[0];
  const info = tf.backend_util.segment_util.collectGatherOpShapeInfo(x as tf.Tensor, indices as tf.Tensor, ax, batchDims);
  const out = backend.makeOutput(info.outputShape, x.dtype);
  const n = tf.util.sizeFromShape(indices.shape) / Math.max(info.batchSize, 1);
  if (tf.util.sizeFromShape(info.outputShape) === 0) return out;
  // Views are taken after makeOutput: allocating may grow the WASM memory and detach older views.
  const xs = backend.typedArrayFromHeap(x);
  const ids = backend.typedArrayFromHeap(indices);
  const os = backend.typedArrayFromHeap(out);
  const { batchSize, outerSize, dimSize, sliceSize } = info;
  for (let i = 0; i < ids.length; i++) {
    if (ids[i] < 0 || ids[i] >= dimSize) throw new Error(`GatherV2: the index value ${ids[i]} is not in [0, ${dimSize - 1}]`);
  }
  let dst = 0;
  for (let b = 0; b < batchSize; b++) {
    for (let o = 0; o < outerSize; o++) {
      const base = (b * outerSize + o) * dimSize * sliceSize;
      for (let i = 0; i < n; i++) {
        const src = base + ids[b * n + i] * sliceSize;
        os.set(xs.subarray(src, src + sliceSize), dst);
        dst += sliceSize;
      }
    }
  }
  return out;
}

/** Replaces the backend's own GatherV2 (see `registerKernels`). */
export const gatherV2WasmConfig: tf.KernelConfig = { kernelName: tf.GatherV2, backendName: 'wasm', kernelFunc: gatherV2 as unknown as tf.KernelFunc };
