/**
 * Block-wise 8-bit quantization against a 256-value code (bitsandbytes' `quantize_blockwise` /
 * `dequantize_blockwise`, CUDA `kQuantizeBlockwise` with `dQuantize<0>` in `csrc/kernels.cu`):
 * per block absmax (float32), each value `x * (1 / absmax)` rounded to a code index by the kernel's
 * binary search, dequantized as `code[index] * absmax`.
 */
import { f32 } from './float32.js';

/**
 * The code index of normalised `x` by bitsandbytes' `dQuantize<0>` (not stochastic): a 7-step binary
 * search from pivot 127 with strict `x > code[pivot]`, then a choice against the float32 midpoint
 * `(neighbour + code[pivot]) * 0.5`. A value exactly on that midpoint stays at the pivot, so ties do
 * not always go the same way; the search never visits index 255 except as the upper neighbour.
 * NaN takes index 0.
 */
export function dynamicIndex(code: Float32Array, x: number): number {
  let pivot = 127;
  let upperPivot = 255;
  let lowerPivot = 0;
  let lower = -1.0;
  let upper = 1.0;
  let val = code[pivot];
  for (let i = 64; i > 0; i >>= 1) {
    if (x > val) {
      lowerPivot = pivot;
      lower = val;
      pivot += i;
    } else {
      upperPivot = pivot;
      upper = val;
      pivot -= i;
    }
    val = code[pivot];
  }
  if (upperPivot === 255) upper = code[upperPivot];
  if (lowerPivot === 0) lower = code[lowerPivot];
  if (x > val) {
    const midpoint = f32(f32(upper + val) * 0.5);
    return x > midpoint ? upperPivot : pivot;
  }
  const midpoint = f32(f32(lower + val) * 0.5);
  return x < midpoint ? lowerPivot : pivot;
}

/** One byte per value and one float32 absmax per block. */
export interface Blockwise8bit {
  codes: Uint8Array;
  absmax: Float32Array;
}

/** Quantizes float32 `x` with `code` in blocks of `blocksize` (the last one may be partial). */
export function quantizeBlockwise8(x: Float32Array, code: Float32Array, blocksize: number): Blockwise8bit {
  const n = x.length;
  const blocks = Math.ceil(n / blocksize);
  const codes = new Uint8Array(n);
  const absmax = new Float32Array(blocks);
  for (let b = 0; b < blocks; b++) {
    const start = b * blocksize;
    const end = Math.min(n, start + blocksize);
    let m = 0;
    for (let i = start; i < end; i++) m = Math.max(m, Math.abs(x[i]));
    absmax[b] = m;
    const inv = f32(1 / m);
    for (let i = start; i < end; i++) codes[i] = dynamicIndex(code, f32(x[i] * inv));
  }
  return { codes, absmax };
}

/** Inverse of {@link quantizeBlockwise8}: `code[codes[i]] * absmax[block]` in float32. */
export function dequantizeBlockwise8(codes: Uint8Array, absmax: Float32Array, code: Float32Array, blocksize: number): Float32Array {
  const out = new Float32Array(codes.length);
  for (let i = 0; i < codes.length; i++) out[i] = code[codes[i]] * absmax[Math.floor(i / blocksize)];
  return out;
}
