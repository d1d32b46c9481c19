/**
 * Sum for the WASM backend over axes that are not the innermost ones, without a transpose.
 *
 * Why: tfjs-backend-wasm 4.22's Sum reduces only over the innermost axes; for any other axes it
 * first transposes the whole input so that they become innermost (its `permuteAxesAndTranspose`,
 * which calls its slow Transpose directly, not through the kernel registry). Every bias gradient
 * (dy [N, out] summed over the rows), LayerNorm's weight and bias gradients and each broadcast
 * gradient ([B, T, C] over [0, 1]) paid a full transpose: Sum was 6 % of the main job's
 * pretraining step's kernel time (docs/benchmarks.md, issue 14).
 *
 * This kernel walks the input once in memory order. After axes of size 1 are dropped and
 * neighbouring axes of the same kind (reduced or kept) are merged, the input is a sequence of
 * contiguous runs along its innermost axis: when that axis is kept, each run is added element-wise
 * to its row of the output ([N, C] over axis 0: C column sums read row by row); when it is
 * reduced, each run is summed and added to one output element. Sums accumulate in float64 and are
 * rounded to float32 once, so the result is at least as accurate as tfjs's float32 accumulation
 * (measured in sum.test.ts against a float64 reference).
 *
 * Handed back to the backend's own kernel: dtypes other than float32 (int32 sums must stay
 * integer), reductions over the innermost axes only (no transpose there), empty inputs, and outputs
 * of more than {@link MAX_OUTPUT} elements, whose float64 accumulators no longer stay in the cache.
 *
 * Reference: the cpu backend's Sum (tested in sum.test.ts, within float32 rounding).
 */
import * as tf from '@tensorflow/tfjs';
import type { WasmHeapBackend, WasmKernelArgs } from './heap.js';
import { replacedKernel } from '../replaced.js';

/**
 * Largest output (elements) this kernel computes: 512 KiB of float64 accumulators, about what the
 * L2 cache holds. Up to it ours measured 1.8 to 6.7 times faster than transpose-then-sum ([2048, 512]
 * over the rows: 1.3 ms against 9.0; [16, 128, 128] over [0, 1]: 0.33 against 0.88; [64, 128, 128]
 * over axis 0: 1.3 against 4.2); above it, with few rows, slower ([8, 128, 4096] over axis 0,
 * 524288 outputs: 10.3 against 6.7).
 */
const MAX_OUTPUT = 65536;

/**
 * `shape` with axes of size 1 dropped and neighbouring axes of the same kind merged, as sizes
 * and whether each is reduced: e.g. [16, 128, 1, 512] over [0, 1] → sizes [2048, 512], reduced
 * [true, false]. Row-major order is unchanged, so the input can be read as this shape.
 */
export function simplifyReduction(shape: readonly number[], axes: readonly number[]): { sizes: number[]; reduced: boolean[] } {
  const sizes: number[] = [];
  const reduced: boolean[] = [];
  shape.forEach((s, a) => {
    if (s === 1) return;
    const r = axes.includes(a);
    if (reduced.length > 0 && reduced[reduced.length - 1] === r) sizes[sizes.length - 1] *= s;
    else {
      sizes.push(s);
      reduced.push(r);
    }
  });
  return { sizes, reduced };
}

/**
 * Adds `x` (row-major, {@link simplifyReduction}'s `sizes`) over its `reduced` axes into `out`
 * (the kept axes, in order; overwritten), accumulating in float64.
 */
export function sumInto(x: Float32Array, sizes: readonly number[], reduced: readonly boolean[], out: Float32Array): void {
  const rank = sizes.length;
  if (rank === 0 || (rank === 1 && !reduced[0])) {
    // Every reduced axis had size 1: nothing is added.
    out.set(x.subarray(0, out.length));
    return;
  }
  const acc = new Float64Array(out.length);
  const run = sizes[rank - 1];
  const innerKept = !reduced[rank - 1];
  // With the innermost axis kept, the axis before it is reduced (simplifyReduction alternates
  // kinds): its `rows` runs add into the same output row, and the odometer walks the axes above.
  const rows = innerKept ? sizes[rank - 2] : 1;
  const outer = innerKept ? rank - 2 : rank - 1;
  // Output strides of the outer axes (0 for a reduced axis: it does not move in the output).
  const outStrides = new Array<number>(outer).fill(0);
  for (let a = outer - 1, s = innerKept ? run : 1; a >= 0; a--) {
    if (reduced[a]) continue;
    outStrides[a] = s;
    s *= sizes[a];
  }
  const idx = new Array<number>(outer).fill(0);
  const block = rows * run;
  let o = 0;
  for (let i = 0; i < x.length; i += block) {
    if (innerKept) addRows(x, i, rows, run, acc, o);
    else {
      let s = 0;
      for (let k = 0; k < run; k++) s += x[i + k];
      acc[o] += s;
    }
    // Odometer over the outer axes, moving the output offset.
    for (let a = outer - 1; a >= 0; a--) {
      o += outStrides[a];
      if (++idx[a] < sizes[a]) break;
      o -= outStrides[a] * sizes[a];
      idx[a] = 0;
    }
  }
  out.set(acc);
}

/**
 * acc[o + k] += Σ_r x[i + r·run + k] for k < run, r < rows. Four rows per pass over the accumulator
 * (2.5 to 2.8 times faster than one: one accumulator read and write per four inputs); the additions
 * stay in row order, in float64, so the result is the same as adding one row at a time.
 */
function addRows(x: Float32Array, i: number, rows: number, run: number, acc: Float64Array, o: number): void {
  let r = 0;
  for (; r + 4 <= rows; r += 4) {
    const i0 = i + r * run, i1 = i0 + run, i2 = i1 + run, i3 = i2 + run;
    for (let k = 0; k < run; k++) acc[o + k] = acc[o + k] + x[i0 + k] + x[i1 + k] + x[i2 + k] + x[i3 + k];
  }
  for (; r < rows; r++) {
    const i0 = i + r * run;
    for (let k = 0; k < run; k++) acc[o + k] += x[i0 + k];
  }
}

function sum(args: WasmKernelArgs): tf.TensorInfo {
  const { x } = args.inputs as { x: tf.TensorInfo };
  const { axis, keepDims } = args.attrs as unknown as tf.SumAttrs;
  const rank = x.shape.length;
  const axes = tf.util.parseAxisParam(axis, x.shape);
  // No permutation needed: the backend's own kernel reduces innermost axes without a transpose.
  const innermost = tf.backend_util.getAxesPermutation(axes, rank) == null;
  if (x.dtype !== 'float32' || innermost || tf.util.sizeFromShape(x.shape) === 0) {
    return replacedKernel(tf.Sum, 'wasm')(args as never) as tf.TensorInfo;
  }
  const [outShape] = tf.backend_util.computeOutAndReduceShapes(x.shape, axes);
  if (tf.util.sizeFromShape(outShape) > MAX_OUTPUT) return replacedKernel(tf.Sum, 'wasm')(args as never) as tf.TensorInfo;
  const backend = args.backend as WasmHeapBackend;
  const out = backend.makeOutput(outShape, 'float32');
  const { sizes, reduced } = simplifyReduction(x.shape, axes);
  // Views are taken after makeOutput: allocating may grow the WASM memory and detach older views.
  sumInto(backend.typedArrayFromHeap(x) as Float32Array, sizes, reduced, backend.typedArrayFromHeap(out) as Float32Array);
  if (keepDims) out.shape = tf.backend_util.expandShapeToKeepDim(outShape, axes);
  return out;
}

/** Replaces the backend's own Sum (see `registerKernels`). */
export const sumWasmConfig: tf.KernelConfig = { kernelName: tf.Sum, backendName: 'wasm', kernelFunc: sum as unknown as tf.KernelFunc };
