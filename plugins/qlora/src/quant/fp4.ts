/**
 * bitsandbytes' FP4: 1 sign bit, 2 exponent bits, 1 mantissa bit (E2M1, exponent bias 3, with
 * subnormals), scaled so that the largest magnitude is 1. The bit patterns are NOT in value order:
 * bit 3 is the sign, and `0b010`/`0b011` are the largest magnitudes (8 and 12 before scaling).
 *
 * Sources: `bitsandbytes/functional.py` `get_4bit_type("fp4")` (the table, divided by its absmax 12)
 * and `csrc/kernels.cu` `dQuantizeFP4` / `dDequantizeFP4Tree` (rounding and decoding).
 */
import { f32 } from './float32.js';

/** Unscaled magnitudes of the patterns 0b000 to 0b111: 0, 0.0625 (subnormal), 8, 12, 4, 6, 2, 3. */
const MAGNITUDE = [0, 0.0625, 8, 12, 4, 6, 2, 3];

/**
 * The 16 FP4 code values, index 0 to 15, as float32: `sign * MAGNITUDE[i & 7] / 12` (index 8 is -0).
 * This is the `weight.quant_map` bitsandbytes saves for FP4.
 */
export const FP4_CODE: Float32Array = Float32Array.from({ length: 16 }, (_, i) => f32((i & 8 ? -MAGNITUDE[i & 7] : MAGNITUDE[i & 7]) / 12));

// The kernel's pivots (float32 literals in kernels.cu): midpoints of adjacent magnitudes / 12.
const P = {
  a: f32(0.29166667), // between 3/12 and 4/12
  b: f32(0.583333), // between 6/12 and 8/12
  c: f32(0.8333333), // between 8/12 and 12/12
  d: f32(0.4166667), // between 4/12 and 6/12
  e: f32(0.0859375), // between 0.0625/12 and 2/12
  f: f32(0.20833333), // between 2/12 and 3/12
  g: f32(0.00260417), // between 0 and 0.0625/12
};

/**
 * The FP4 index of a normalised value `x` (a float32 in [-1, 1]), as bitsandbytes' `dQuantizeFP4`:
 * sign bit from `x < 0`, then a binary search on |x| with strict `>`.
 *
 * Ties go to the smaller magnitude. Negative values too small to round away from zero keep their
 * sign (index 8, -0). NaN becomes index 0.
 */
export function fp4Index(x: number): number {
  const sign = x < 0 ? 8 : 0;
  const a = Math.abs(x);
  if (a > P.a) {
    if (a > P.b) return (a > P.c ? 0b011 : 0b010) + sign;
    return (a > P.d ? 0b101 : 0b100) + sign;
  }
  if (a > P.e) return (a > P.f ? 0b111 : 0b110) + sign;
  return (a > P.g ? 0b001 : 0b000) + sign;
}
