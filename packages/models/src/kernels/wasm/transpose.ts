/**
 * Transpose for the WASM backend: a cache-blocked loop over views of the WASM heap.
 *
 * Why: tfjs-backend-wasm 4.22's Transpose took about 8 ns an element on the main job's [2048, 512]
 * (the MLP's activations, transposed for a weight gradient) and [2048, 128]: transposes were 8 % of
 * its pretraining step's kernel time (docs/benchmarks.md, issue 14). This loop moves the elements
 * in 32 x 32 tiles, so that both the reads and the writes of a tile stay in the L1 cache.
 *
 * The kernel takes only the cases where it measured faster than the backend's own (docs/benchmarks.md,
 * issue 14): after axes of size 1 are dropped and input axes that stay adjacent in the output are
 * merged, a 2-D transpose or a batch of them ([B, R, C] → [B, C, R]) of at least {@link MIN_MATRIX}
 * elements a matrix whose row count R is a multiple of 512, in float32, int32 or bool. The
 * backend's kernel is fast (about 0.6 ns an element: [2032, 128] in 0.16 ms) except there, where
 * its output rows, R elements apart, collide in the cache ([2048, 128]: 2.2 ms; [2048, 512]: 7.9
 * against our 3.2; [4096, 128]: 3.4 against 1.6). Everything else goes to the backend's kernel:
 * other shapes (ours, about 3 ns an element, was slower or even), permutations that keep the
 * innermost axis, strings and complex numbers, and permutations that move nothing (its kernel then
 * shares the data). `transposeInto` itself handles any rank and permutation and is tested on all.
 *
 * Reference: the cpu backend's Transpose (bit-identical outputs: elements are moved, not computed;
 * tested in transpose.test.ts for every permutation of rank 1 to 4).
 */
import * as tf from '@tensorflow/tfjs';
import type { WasmHeapBackend, WasmKernelArgs } from './heap.js';
import { replacedKernel } from '../replaced.js';

/** Tile edge: 32 x 32 float32 is 4 KiB read and 4 KiB written, well inside a 32 KiB L1. */
const TILE = 32;

/** Smallest matrix (elements) this kernel transposes: below it the two kernels measured even. */
const MIN_MATRIX = 32768;

/**
 * `shape` and `perm` with the axes of size 1 dropped and input axes that stay adjacent (and in
 * order) in the output merged into one, which moves the same elements in the same order.
 * E.g. [2, 3, 4, 5] with perm [0, 2, 3, 1] → [2, 3, 20] with perm [0, 2, 1].
 */
export function simplifyPermutation(shape: readonly number[], perm: readonly number[]): { shape: number[]; perm: number[] } {
  // Output-ordered groups of consecutive input axes, skipping axes of size 1.
  const groups: number[][] = [];
  for (const a of perm) {
    if (shape[a] === 1) continue;
    const last = groups[groups.length - 1];
    // `a` continues the previous group when it is the next input axis that is not of size 1.
    let prev = a - 1;
    while (prev >= 0 && shape[prev] === 1) prev--;
    if (last && last[last.length - 1] === prev) last.push(a);
    else groups.push([a]);
  }
  const byInput = [...groups].sort((g, h) => g[0] - h[0]);
  return {
    shape: byInput.map((g) => g.reduce((n, a) => n * shape[a], 1)),
    perm: groups.map((g) => byInput.indexOf(g)),
  };
}

/**
 * Writes into `dst` the elements of `src` (row-major, `shape`) permuted by `perm` (output axis i
 * is input axis perm[i], tfjs's and NumPy's convention). Any rank; `shape` and `perm` should be
 * simplified ({@link simplifyPermutation}) for speed, not correctness.
 */
export function transposeInto(src: tf.TypedArray, shape: readonly number[], perm: readonly number[], dst: tf.TypedArray): void {
  const rank = shape.length;
  const n = src.length;
  if (rank === 0 || n === 0) return;
  const inStrides = [...tf.util.computeStrides(shape as number[]), 1];
  const outShape = perm.map((p) => shape[p]);
  const outStrides = [...tf.util.computeStrides(outShape), 1];
  const last = rank - 1;
  // The output axis that holds the input's innermost (contiguous) axis.
  const q = perm.indexOf(last);
  // Axes walked by the odometer: all output axes but the two that the inner loops cover.
  const outer = [...Array(rank).keys()].filter((d) => d !== q && d !== last);
  const idx = new Array<number>(outer.length).fill(0);
  let inOff = 0;
  let outOff = 0;
  if (q === last) {
    // The innermost axis stays innermost: copy runs of it.
    const run = shape[last];
    for (;;) {
      if (run >= 16) dst.set(src.subarray(inOff, inOff + run), outOff);
      else for (let i = 0; i < run; i++) dst[outOff + i] = src[inOff + i];
      if (!advance()) return;
    }
  }
  // A 2-D transpose per outer index: rows = input's innermost axis (read with stride 1, written
  // with stride sq), columns = output's innermost axis (read with stride sc, written with stride 1).
  const rows = shape[last];
  const cols = outShape[last];
  const sq = outStrides[q];
  const sc = inStrides[perm[last]];
  for (;;) {
    for (let c0 = 0; c0 < cols; c0 += TILE) {
      const c1 = Math.min(c0 + TILE, cols);
      for (let r0 = 0; r0 < rows; r0 += TILE) {
        const r1 = Math.min(r0 + TILE, rows);
        for (let r = r0; r < r1; r++) {
          const o = outOff + r * sq;
          const i = inOff + r;
          for (let c = c0; c < c1; c++) dst[o + c] = src[i + c * sc];
        }
      }
    }
    if (!advance()) return;
  }

  /** Steps the odometer over the outer output axes, moving both offsets; false when done. */
  function advance(): boolean {
    for (let k = outer.length - 1; k >= 0; k--) {
      const d = outer[k];
      inOff += inStrides[perm[d]];
      outOff += outStrides[d];
      if (++idx[k] < outShape[d]) return true;
      inOff -= inStrides[perm[d]] * outShape[d];
      outOff -= outStrides[d] * outShape[d];
      idx[k] = 0;
    }
    return false;
  }
}

function transpose(args: WasmKernelArgs): tf.TensorInfo {
  const { x } = args.inputs as { x: tf.TensorInfo };
  const { perm } = args.attrs as unknown as tf.TransposeAttrs;
  const simple = simplifyPermutation(x.shape, perm);
  const p = simple.perm.join();
  const r = simple.shape.length;
  const matrix = r >= 2 ? simple.shape[r - 1] * simple.shape[r - 2] : 0;
  const ours = (p === '1,0' || p === '0,2,1') && matrix >= MIN_MATRIX && simple.shape[r - 2] % 512 === 0 && (x.dtype === 'float32' || x.dtype === 'int32' || x.dtype === 'bool');
  if (!ours) {
    return replacedKernel(tf.Transpose, 'wasm')(args as never) as tf.TensorInfo;
  }
  const backend = args.backend as WasmHeapBackend;
  const out = backend.makeOutput(perm.map((p) => x.shape[p]), x.dtype);
  // Views are taken after makeOutput: allocating may grow the WASM memory and detach older views.
  transposeInto(backend.typedArrayFromHeap(x), simple.shape, simple.perm, backend.typedArrayFromHeap(out));
  return out;
}

/** Replaces the backend's own Transpose (see `registerKernels`). */
export const transposeWasmConfig: tf.KernelConfig = { kernelName: tf.Transpose, backendName: 'wasm', kernelFunc: transpose as unknown as tf.KernelFunc };
