/**
 * UnsortedSegmentSum for the WASM backend, which lacks it (tfjs-backend-wasm 4.22). tfjs's
 * gradient of `gather` is built on it, so without it nothing read through `tf.gather` can be
 * trained on wasm: embeddings in full fine-tuning, prompt tables looked up by index.
 *
 * `out[s, ...] = Σ_{i : segmentIds[i] = s} x[i, ...]` (TensorFlow's `tf.math.unsorted_segment_sum`):
 * segmentIds has the shape of a prefix of x's shape; ids outside [0, numSegments) are dropped.
 * Output [numSegments, ...x.shape[segmentIds.rank:]], zero where a segment gets nothing.
 *
 * Written in TypeScript over the WASM heap (the backend exposes its tensors as typed arrays), in
 * tfjs's kernel-config shape: one pass over x, O(x.size) additions.
 */
import * as tf from '@tensorflow/tfjs';
import type { WasmHeapBackend, WasmKernelArgs } from './heap.js';

function unsortedSegmentSum(args: WasmKernelArgs): tf.TensorInfo {
  const { x, segmentIds } = args.inputs as unknown as tf.UnsortedSegmentSumInputs & { x: tf.TensorInfo; segmentIds: tf.TensorInfo };
  const { numSegments } = args.attrs as unknown as tf.UnsortedSegmentSumAttrs;
  const backend = args.backend as WasmHeapBackend;
  const idRank = segmentIds.shape.length;
  const rows = tf.util.sizeFromShape(segmentIds.shape);
  const innerShape = x.shape.slice(idRank);
  const inner = tf.util.sizeFromShape(innerShape);
  const out = backend.makeOutput([numSegments, ...innerShape], x.dtype);
  if (numSegments * inner === 0) return out;
  // Views are taken after makeOutput: allocating may grow the WASM memory and detach older views.
  const o = backend.typedArrayFromHeap(out);
  const xs = backend.typedArrayFromHeap(x);
  const ids = backend.typedArrayFromHeap(segmentIds);
  o.fill(0);
  for (let i = 0; i < rows; i++) {
    const s = ids[i];
    if (s < 0 || s >= numSegments) continue;
    const dst = s * inner;
    const src = i * inner;
    for (let j = 0; j < inner; j++) o[dst + j] += xs[src + j];
  }
  return out;
}

/** The kernel config, registered by `registerKernels` (kernels/index.ts). */
export const unsortedSegmentSumConfig: tf.KernelConfig = {
  kernelName: tf.UnsortedSegmentSum,
  backendName: 'wasm',
  kernelFunc: unsortedSegmentSum as unknown as tf.KernelFunc,
};
