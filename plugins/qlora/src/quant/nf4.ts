/**
 * NormalFloat4 (NF4), the 4-bit data type of QLoRA (Dettmers et al. 2023, arXiv:2305.14314, §3
 * "4-bit NormalFloat Quantization"): 16 values with equal probability mass under N(0, 1), normalised
 * to [-1, 1], with an exact zero.
 *
 * Values and rounding are bitsandbytes' (`bitsandbytes/functional.py` `get_4bit_type("nf4")` for the
 * table, `csrc/kernels.cu` `dQuantizeNF4` for the rounding).
 */
import { f32 } from './float32.js';

/** The 16 NF4 code values, index 0 to 15, as float32 (the `weight.quant_map` bitsandbytes saves). */
export const NF4_CODE: Float32Array = Float32Array.from([
  -1.0, -0.6961928009986877, -0.5250730514526367, -0.39491748809814453, -0.28444138169288635, -0.18477343022823334,
  -0.09105003625154495, 0.0, 0.07958029955625534, 0.16093020141124725, 0.24611230194568634, 0.33791524171829224,
  0.44070982933044434, 0.5626170039176941, 0.7229568362236023, 1.0,
]);

// The thresholds of bitsandbytes' decision tree: midpoints of adjacent codes, as float32 literals.
const T = [
  -0.8480964004993439, -0.6106329262256622, -0.4599952697753906, -0.33967943489551544, -0.23460740596055984,
  -0.13791173323988914, -0.045525018125772476, 0.03979014977812767, 0.1202552504837513, 0.2035212516784668,
  0.2920137718319893, 0.3893125355243683, 0.5016634166240692, 0.6427869200706482, 0.8614784181118011,
].map(f32);

/**
 * The NF4 index of a normalised value `x` (a float32, nominally in [-1, 1]), as bitsandbytes'
 * `dQuantizeNF4` decides it: a binary search over the midpoints with strict `>` comparisons.
 *
 * Ties: a value exactly on a midpoint goes to the LOWER code. NaN (a block whose absmax is 0:
 * `0 * (1/0)`) fails every comparison and becomes index 0, as on the GPU.
 */
export function nf4Index(x: number): number {
  // Same comparisons, in the same order, as the kernel's 4-level tree.
  if (x > T[7]) {
    if (x > T[11]) {
      if (x > T[13]) return x > T[14] ? 15 : 14;
      return x > T[12] ? 13 : 12;
    }
    if (x > T[9]) return x > T[10] ? 11 : 10;
    return x > T[8] ? 9 : 8;
  }
  if (x > T[3]) {
    if (x > T[5]) return x > T[6] ? 7 : 6;
    return x > T[4] ? 5 : 4;
  }
  if (x > T[1]) return x > T[2] ? 3 : 2;
  return x > T[0] ? 1 : 0;
}
