/**
 * Block-wise 4-bit quantization as bitsandbytes stores it (`bitsandbytes/functional.py`
 * `quantize_4bit` / `dequantize_4bit`, CUDA kernels `kQuantizeBlockwise` / `kDequantizeBlockwise`
 * in `csrc/kernels.cu`):
 *
 * - the tensor is flattened row-major and cut into blocks of `blocksize` values (the last block may
 *   be partial); each block's absmax = max |x| is kept as float32;
 * - each value becomes the code index of `x * (1 / absmax)` (the kernel multiplies by the float32
 *   reciprocal, it does not divide), rounded by the data type's decision tree ({@link nf4Index},
 *   {@link fp4Index});
 * - two indices per byte, the FIRST element in the HIGH nibble; `ceil(n / 2)` bytes. For odd n the
 *   low nibble of the last byte is the index of the zero padding the kernel loads (NF4: 7, FP4: 0;
 *   index 0 when that block's absmax is 0);
 * - dequantization: `code[index] * absmax` in float32.
 *
 * A block of zeros has absmax 0: `0 * (1/0)` is NaN on the GPU and every value gets index 0, which
 * dequantizes to `code[0] * 0 = ±0`. We reproduce that.
 */
import { UserError } from '@peftkit/core';
import { f32 } from './float32.js';
import { FP4_CODE, fp4Index } from './fp4.js';
import { NF4_CODE, nf4Index } from './nf4.js';

/** The 4-bit data types. */
export type QuantType4bit = 'nf4' | 'fp4';

/** Block sizes bitsandbytes' 4-bit kernels accept: powers of two from 32 to 4096. */
export const BLOCKSIZES: readonly number[] = [32, 64, 128, 256, 512, 1024, 2048, 4096];

/**
 * @throws UserError unless `blocksize` is a power of two in [32, 4096], naming the allowed values.
 */
export function assertBlocksize(blocksize: number, where = 'blocksize'): void {
  if (!BLOCKSIZES.includes(blocksize)) {
    const why = !Number.isInteger(blocksize) ? 'is not an integer' : blocksize < 32 || blocksize > 4096 ? 'is outside 32..4096' : 'is not a power of two';
    throw new UserError(`${where} ${blocksize} ${why}`, { hint: `use one of ${BLOCKSIZES.join(', ')} (bitsandbytes' 4-bit kernels; 64 is the QLoRA default)` });
  }
}

/** The 16 code values of a 4-bit type (bitsandbytes' `quant_map`). */
export function codeOf(quantType: QuantType4bit): Float32Array {
  return quantType === 'nf4' ? NF4_CODE : FP4_CODE;
}

/** A tensor quantized to 4 bits, before any double quantization of its absmax. */
export interface Packed4bit {
  /** ceil(n / 2) bytes, first element of each pair in the high nibble. */
  packed: Uint8Array;
  /** One float32 per block: ceil(n / blocksize) values. */
  absmax: Float32Array;
}

/**
 * Quantizes `x` (float32, any length n >= 1) to packed 4-bit codes with one absmax per block.
 * @throws UserError for a blocksize that is not a power of two in [32, 4096].
 */
export function quantize4bit(x: Float32Array, quantType: QuantType4bit, blocksize = 64): Packed4bit {
  assertBlocksize(blocksize);
  const n = x.length;
  const blocks = Math.ceil(n / blocksize);
  const absmax = new Float32Array(blocks);
  const packed = new Uint8Array(Math.ceil(n / 2));
  const index = quantType === 'nf4' ? nf4Index : fp4Index;
  for (let b = 0; b < blocks; b++) {
    const start = b * blocksize;
    const end = Math.min(n, start + blocksize);
    let m = 0;
    for (let i = start; i < end; i++) {
      const a = Math.abs(x[i]);
      if (a > m) m = a;
    }
    absmax[b] = m;
    const inv = f32(1 / m);
    // Blocks start at even offsets (blocksize is even), so pairs never straddle two blocks.
    for (let i = start; i < end; i += 2) {
      const hi = index(f32(x[i] * inv));
      // Past the end the kernel quantizes its zero padding.
      const lo = index(f32((i + 1 < end ? x[i + 1] : 0) * inv));
      packed[i >> 1] = (hi << 4) | lo;
    }
  }
  return { packed, absmax };
}

/**
 * Dequantizes `n` values from packed 4-bit codes and per-block absmax (float32).
 * @param code - the 16 code values; defaults to the type's table. Pass a checkpoint's own `quant_map`.
 * @throws Error when `packed` or `absmax` is too short for n values.
 */
export function dequantize4bit(packed: Uint8Array, absmax: Float32Array, n: number, blocksize: number, code: Float32Array, out = new Float32Array(n)): Float32Array {
  if (packed.length < Math.ceil(n / 2)) throw new Error(`dequantize4bit: ${packed.length} packed bytes hold fewer than ${n} values`);
  if (absmax.length < Math.ceil(n / blocksize)) throw new Error(`dequantize4bit: ${absmax.length} absmax values for ${Math.ceil(n / blocksize)} blocks of ${blocksize}`);
  // Float32Array stores round each product to float32: exactly the kernel's float multiply.
  for (let b = 0, start = 0; start < n; b++, start += blocksize) {
    const a = absmax[b];
    const end = Math.min(n, start + blocksize);
    for (let i = start; i < end; i += 2) {
      const byte = packed[i >> 1];
      out[i] = code[byte >> 4] * a;
      if (i + 1 < end) out[i + 1] = code[byte & 15] * a;
    }
  }
  return out;
}
