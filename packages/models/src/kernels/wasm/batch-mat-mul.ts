/**
 * BatchMatMul for the WASM backend.
 *
 * Float32 products go to peftkit's GEMM (./gemm.ts), which reads transposed and batched operands in place (one of
 * them may be broadcast over the batch) and runs at about 1.5 times XNNPACK's speed; a decoding step's few rows
 * stream the weight once, unpacked.
 *
 * The rest (other dtypes, general batch broadcasting), and everything when
 * `PEFTKIT_WASM_GEMM=xnnpack`, goes the way of the backend's own kernel. tfjs-backend-wasm 4.22 sends a product to
 * XNNPACK's GEMM only when neither operand is transposed and the right operand has no batch axis; everything else
 * (attention's q·kᵀ and probs·v over [batch·heads] slices, every transposed product tfjs's matMul gradient makes)
 * runs a plain triple loop at 1.5 to 3 GFLOP/s on one thread, where the GEMM reaches 15 to 20 (docs/benchmarks.md).
 * This kernel turns such a product into fast 2-D ones inside one kernel call:
 * - right operand without batch (or broadcast over it), left not transposed: Bᵀ is materialized
 *   once if needed and the left operand's batch is folded into its rows, one GEMM;
 * - batched right operand: each batch slice is copied (transposed where a flag says so) into
 *   [m, k] and [k, n] scratch tensors and multiplied by the GEMM; results are written in place.
 * Copies cost O(m·k + k·n) per slice against O(m·k·n) arithmetic. Results equal tfjs's up to the
 * order of float32 summation (tested against the cpu backend in batch-mat-mul.test.ts).
 * Products the backend already runs fast (2-D, no flags), 2-D products with flags (a decoding step
 * multiplies one row by Wᵀ; transposing W would cost more than the product) and general
 * broadcasting are left to the backend's own kernel.
 */
import * as tf from '@tensorflow/tfjs';
import type { WasmHeapBackend, WasmKernelArgs } from './heap.js';
import { replacedKernel } from '../replaced.js';
import { heapGemm, wasmGemmInfo } from './gemm.js';

/** Copies the [rows, cols] matrix at `src[off..]` into `dst`, transposed ([cols, rows]) when `transpose`. */
function copyMatrix(src: tf.TypedArray, off: number, rows: number, cols: number, transpose: boolean, dst: tf.TypedArray): void {
  if (!transpose) {
    dst.set(src.subarray(off, off + rows * cols));
    return;
  }
  for (let r = 0; r < rows; r++) {
    const row = off + r * cols;
    for (let c = 0; c < cols; c++) dst[c * rows + r] = src[row + c];
  }
}

/**
 * Whether this kernel gives a product to peftkit's GEMM, which takes transposed operands at full speed, on the WASM
 * backend now in use: float32 operands, the GEMM on.
 */
export function ownGemmTakes(dtypeA: tf.DataType, dtypeB: tf.DataType): boolean {
  return dtypeA === 'float32' && dtypeB === 'float32' && wasmGemmInfo().kind !== 'xnnpack';
}

function batchMatMul(args: WasmKernelArgs): tf.TensorInfo {
  const { a, b } = args.inputs as { a: tf.TensorInfo; b: tf.TensorInfo };
  const { transposeA, transposeB } = args.attrs as unknown as tf.BatchMatMulAttrs;
  const tfjs = replacedKernel(tf.BatchMatMul, 'wasm');
  const backend = args.backend as WasmHeapBackend;
  const ra = a.shape.length;
  const rb = b.shape.length;
  const batchA = tf.util.sizeFromShape(a.shape.slice(0, -2));
  const batchB = tf.util.sizeFromShape(b.shape.slice(0, -2));
  const batch = Math.max(batchA, batchB);
  const own = ownGemm(args, a, b, transposeA, transposeB, batchA, batchB);
  if (own) return own;
  const plainFast = !transposeA && !transposeB && batchB === 1;
  // Batch axes that broadcast against each other ([1, 3] with [3, 1]: 9 slices from 3 and 3) are not whole-operand
  // broadcasting, which is all the slice loop below does.
  const wholeOperand = batchA === batchB ? sameBatchShape(a, b) : batchA === 1 || batchB === 1;
  if (a.dtype !== 'float32' || b.dtype !== 'float32' || plainFast || batch === 1 || !wholeOperand) {
    return tfjs(args as never) as tf.TensorInfo;
  }
  const m = transposeA ? a.shape[ra - 1] : a.shape[ra - 2];
  const k = transposeA ? a.shape[ra - 2] : a.shape[ra - 1];
  const n = transposeB ? b.shape[rb - 2] : b.shape[rb - 1];
  const kb = transposeB ? b.shape[rb - 1] : b.shape[rb - 2];
  if (k !== kb) return tfjs(args as never) as tf.TensorInfo; // the backend's kernel words the error
  const outShape = [...tf.broadcast_util.assertAndGetBroadcastShape(a.shape.slice(0, -2), b.shape.slice(0, -2)), m, n];
  const gemm = (x: tf.TensorInfo, y: tf.TensorInfo) => tfjs({ inputs: { a: x, b: y }, backend: args.backend, attrs: { transposeA: false, transposeB: false } } as never) as tf.TensorInfo;

  if (batchB === 1 && !transposeA) {
    // Only Bᵀ stands in the way: fold A's batch into rows, one GEMM of [batch·m, k] · [k, n].
    const bt = backend.makeOutput([k, n], 'float32');
    copyMatrix(backend.typedArrayFromHeap(b), 0, n, k, true, backend.typedArrayFromHeap(bt));
    const r = gemm({ dataId: a.dataId, shape: [batch * m, k], dtype: 'float32' }, bt);
    backend.disposeData(bt.dataId);
    return { dataId: r.dataId, shape: outShape, dtype: 'float32' };
  }

  const out = backend.makeOutput(outShape, 'float32');
  const sa = backend.makeOutput([m, k], 'float32');
  let sb: tf.TensorInfo | undefined;
  try {
    for (let i = 0; i < batch; i++) {
      // The left scratch is reused (XNNPACK reads it afresh each call); the right one is new per
      // slice, because the backend caches the GEMM's packed weights by the right operand's id.
      if (i === 0 || batchA > 1) {
        const src = transposeA ? [k, m] : [m, k];
        copyMatrix(backend.typedArrayFromHeap(a), (batchA > 1 ? i : 0) * m * k, src[0], src[1], transposeA, backend.typedArrayFromHeap(sa));
      }
      if (i === 0 || batchB > 1) {
        if (sb) backend.disposeData(sb.dataId);
        sb = backend.makeOutput([k, n], 'float32');
        const src = transposeB ? [n, k] : [k, n];
        copyMatrix(backend.typedArrayFromHeap(b), (batchB > 1 ? i : 0) * k * n, src[0], src[1], transposeB, backend.typedArrayFromHeap(sb));
      }
      const r = gemm(sa, sb!);
      backend.typedArrayFromHeap(out).set(backend.typedArrayFromHeap(r), i * m * n);
      backend.disposeData(r.dataId);
    }
  } finally {
    backend.disposeData(sa.dataId);
    if (sb) backend.disposeData(sb.dataId);
  }
  return out;
}

/** Whether a's and b's batch axes (all but the last two) broadcast to exactly as many slices as either has. */
function sameBatchShape(a: tf.TensorInfo, b: tf.TensorInfo): boolean {
  const shape = tf.broadcast_util.assertAndGetBroadcastShape(a.shape.slice(0, -2), b.shape.slice(0, -2));
  return tf.util.sizeFromShape(shape) === tf.util.sizeFromShape(a.shape.slice(0, -2));
}

/**
 * The product by peftkit's GEMM (./gemm.ts), which reads any strides: transposed operands and batches (one of them
 * broadcast) need no copies; empty products give zeros here. Undefined where the backend's kernel runs it: not float32,
 * batch axes that broadcast other than whole-operand, mismatched inner sizes (the backend's kernel words the error),
 * or the GEMM off.
 */
function ownGemm(args: WasmKernelArgs, a: tf.TensorInfo, b: tf.TensorInfo, transposeA: boolean, transposeB: boolean, batchA: number, batchB: number): tf.TensorInfo | undefined {
  const ra = a.shape.length, rb = b.shape.length;
  const m = transposeA ? a.shape[ra - 1] : a.shape[ra - 2];
  const k = transposeA ? a.shape[ra - 2] : a.shape[ra - 1];
  const n = transposeB ? b.shape[rb - 2] : b.shape[rb - 1];
  const kb = transposeB ? b.shape[rb - 1] : b.shape[rb - 2];
  if (a.dtype !== 'float32' || b.dtype !== 'float32' || k !== kb) return undefined;
  if (batchA !== batchB && batchA !== 1 && batchB !== 1) return undefined;
  const batchShape = tf.broadcast_util.assertAndGetBroadcastShape(a.shape.slice(0, -2), b.shape.slice(0, -2));
  const slices = tf.util.sizeFromShape(batchShape);
  if (slices !== 0 && slices !== Math.max(batchA, batchB)) return undefined;
  const backend = args.backend as WasmHeapBackend;
  // An empty sum is 0 (XNNPACK leaves the output unwritten when k is 0); an empty output needs no product (the
  // backend's kernel divides by the batch size). Whatever the row count.
  if (k === 0 || m === 0 || n === 0 || slices === 0) {
    const zeros = backend.makeOutput([...batchShape, m, n], 'float32');
    backend.typedArrayFromHeap(zeros).fill(0);
    return zeros;
  }
  const out = backend.makeOutput([...batchShape, m, n], 'float32');
  // Views after makeOutput: allocating may have grown the heap.
  const at = (t: tf.TensorInfo) => backend.typedArrayFromHeap(t).byteOffset;
  let ran = false;
  try {
    ran = heapGemm(args.backend, {
      a: at(a), ars: transposeA ? 4 : 4 * k, aks: transposeA ? 4 * m : 4,
      b: at(b), bks: transposeB ? 4 : 4 * n, bcs: transposeB ? 4 * k : 4,
      c: at(out), M: m, N: n, K: k,
      batch: Math.max(batchA, batchB), sa: batchA > 1 ? 4 * m * k : 0, sb: batchB > 1 ? 4 * k * n : 0, sc: 4 * m * n,
    });
  } finally {
    if (!ran) backend.disposeData(out.dataId);
  }
  return ran ? out : undefined;
}

/** Replaces the backend's own BatchMatMul (see `registerKernels`). */
export const batchMatMulWasmConfig: tf.KernelConfig = {
  kernelName: tf.BatchMatMul,
  backendName: 'wasm',
  kernelFunc: batchMatMul as unknown as tf.KernelFunc,
};
