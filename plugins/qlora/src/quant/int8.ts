/**
 * 8-bit row-wise absmax quantization of a weight matrix, as bitsandbytes' LLM.int8() stores weights
 * (Dettmers et al. 2022, arXiv:2208.07339, §3.2 vector-wise quantization; `bitsandbytes/functional.py`
 * `int8_vectorwise_quant` / `int8_vectorwise_dequant`), without the outlier decomposition (threshold 0):
 *
 *   SCB[r] = max_c |W[r, c]|             (float32, one per output row)
 *   CB[r, c] = round(W[r, c] * (127 / SCB[r]))   (int8; round half to even, as torch.round)
 *   W ≈ CB * SCB * (1/127)
 *
 * Storage: 8 bits per parameter plus 32 bits per row.
 */
import { f32 } from './float32.js';

/** float32(1/127), the constant bitsandbytes multiplies by when dequantizing. */
export const INV_127 = f32(7.874015718698502e-3);

/** Round half to even (torch.round). */
function roundHalfEven(x: number): number {
  const r = Math.round(x);
  return Math.abs(x % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

/** Row-wise int8: `CB` [rows, cols] and `SCB` [rows]. */
export interface RowwiseInt8 {
  cb: Int8Array;
  scb: Float32Array;
}

/** Quantizes a row-major [rows, cols] float32 matrix. A row of zeros gets SCB 0 and codes 0. */
export function quantizeInt8Rowwise(w: Float32Array, rows: number, cols: number): RowwiseInt8 {
  const cb = new Int8Array(rows * cols);
  const scb = new Float32Array(rows);
  for (let r = 0; r < rows; r++) {
    let m = 0;
    for (let c = 0; c < cols; c++) m = Math.max(m, Math.abs(w[r * cols + c]));
    scb[r] = m;
    if (m === 0) continue;
    const scale = f32(127 / m);
    for (let c = 0; c < cols; c++) cb[r * cols + c] = Math.max(-127, Math.min(127, roundHalfEven(f32(w[r * cols + c] * scale))));
  }
  return { cb, scb };
}

/** `CB * SCB * (1/127)` in float32, left to right as bitsandbytes' `int8_vectorwise_dequant`. */
export function dequantizeInt8Rowwise(q: RowwiseInt8, rows: number, cols: number, out = new Float32Array(rows * cols)): Float32Array {
  for (let r = 0; r < rows; r++) {
    const s = q.scb[r];
    for (let c = 0; c < cols; c++) out[r * cols + c] = f32(q.cb[r * cols + c] * s) * INV_127;
  }
  return out;
}
