/**
 * Double quantization of the per-block absmax values (QLoRA, Dettmers et al. 2023, §3 "Double
 * Quantization"; bitsandbytes `quantize_4bit(..., compress_statistics=True)`):
 *
 *   offset = mean(absmax)                      (float32; saved as `nested_offset` in the quant state)
 *   absmax - offset  →  8-bit dynamic codes in blocks of 256 (`absmax`, uint8)
 *                        with one float32 scale per 256 block (`nested_absmax`)
 *
 * and back: `dynamic[code] * nested_absmax + offset`, in float32.
 *
 * Storage per parameter at blocksize 64: 4 bits + 8/64 + 32/(64·256) ≈ 4.127 bits, against
 * 4 + 32/64 = 4.5 bits with float32 absmax: the paper's 0.373 bits saved per parameter (§3).
 */
import { dequantizeBlockwise8, quantizeBlockwise8 } from './blockwise-8bit.js';
import { dynamicMap } from './dynamic-map.js';
import { f32 } from './float32.js';

/** Block size of the second quantization, fixed by bitsandbytes (`quantize_blockwise(absmax, blocksize=256)`). */
export const NESTED_BLOCKSIZE = 256;

/** Compressed absmax values. */
export interface NestedAbsmax {
  /** One byte per first-level block. */
  absmax: Uint8Array;
  /** One float32 per 256 first-level blocks. */
  nestedAbsmax: Float32Array;
  /** The 256-value code (`nested_quant_map`). */
  nestedCode: Float32Array;
  /** The subtracted mean, a float32 value. */
  offset: number;
  nestedBlocksize: number;
}

/**
 * The float32 mean of `absmax`. Accumulated in float64 and rounded once: PyTorch's float32 `mean`
 * sums in an order that depends on the device, so its last bit may differ from ours; the offset is
 * saved with the checkpoint, so this only matters for bytes we produce ourselves.
 */
export function meanF32(x: Float32Array): number {
  let s = 0;
  for (let i = 0; i < x.length; i++) s += x[i];
  return f32(s / x.length);
}

/**
 * Double-quantizes first-level absmax values.
 * @param code - the 8-bit code (defaults to bitsandbytes' dynamic map).
 */
export function compressAbsmax(absmax: Float32Array, code: Float32Array = dynamicMap()): NestedAbsmax {
  const offset = meanF32(absmax);
  const centred = new Float32Array(absmax.length);
  for (let i = 0; i < absmax.length; i++) centred[i] = absmax[i] - offset;
  const q = quantizeBlockwise8(centred, code, NESTED_BLOCKSIZE);
  return { absmax: q.codes, nestedAbsmax: q.absmax, nestedCode: Float32Array.from(code), offset, nestedBlocksize: NESTED_BLOCKSIZE };
}

/** The float32 absmax values that {@link compressAbsmax} encoded (bitsandbytes' `dequantize_blockwise(...) + offset`). */
export function decompressAbsmax(n: NestedAbsmax): Float32Array {
  const out = dequantizeBlockwise8(n.absmax, n.nestedAbsmax, n.nestedCode, n.nestedBlocksize);
  for (let i = 0; i < out.length; i++) out[i] = out[i] + n.offset;
  return out;
}
