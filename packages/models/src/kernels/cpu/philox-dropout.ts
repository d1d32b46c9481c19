/**
 * The `PeftkitDropout` arithmetic as a fast loop over typed arrays: Philox4x32-10 keyed by
 * (seed0, seed1), one counter block per 4 elements, with the contract and the numbers of
 * kernels/reference/philox.ts (which it is tested against), written for speed:
 * - the ten round keys are the same for every block, so they are computed once;
 * - hi(M · c) takes two exact float64 products of c with M's 16-bit halves (each below 2^48)
 *   instead of four 16 x 16-bit ones, since M is a constant;
 * - one block gives the four words of four consecutive elements.
 * Shared by the CPU kernel (over the backend's arrays) and the WASM kernel (over the WASM heap).
 */
import { dropoutScale, keepThreshold, PHILOX_M0, PHILOX_M1, PHILOX_W0, PHILOX_W1 } from '../reference/philox.js';

const M0L = PHILOX_M0 & 0xffff;
const M0H = PHILOX_M0 >>> 16;
const M1L = PHILOX_M1 & 0xffff;
const M1H = PHILOX_M1 >>> 16;
const INV16 = 2 ** -16;

/**
 * y[i] = keep(i) ? fround(x[i] · dropoutScale(rate)) : 0 for i < n (see kernels/reference/philox.ts).
 *
 * @param x input, at least n elements
 * @param y output, at least n elements (may be x itself)
 * @param n number of elements
 * @param rate drop probability in [0, 1)
 * @param seed0 first key word (uint32)
 * @param seed1 second key word (uint32)
 */
export function philoxDropoutInto(x: ArrayLike<number>, y: Float32Array, n: number, rate: number, seed0: number, seed1: number): void {
  const t = keepThreshold(rate);
  const s = dropoutScale(rate);
  const k0s = new Uint32Array(10);
  const k1s = new Uint32Array(10);
  k0s[0] = seed0 >>> 0;
  k1s[0] = seed1 >>> 0;
  for (let r = 1; r < 10; r++) {
    k0s[r] = (k0s[r - 1] + PHILOX_W0) >>> 0;
    k1s[r] = (k1s[r - 1] + PHILOX_W1) >>> 0;
  }
  const blocks = Math.ceil(n / 4);
  for (let b = 0; b < blocks; b++) {
    let c0 = b;
    let c1 = 0;
    let c2 = 0;
    let c3 = 0;
    for (let r = 0; r < 10; r++) {
      // hi(M · c) = floor((c · M_hi + floor(c · M_lo / 2^16)) / 2^16): every term exact in float64.
      const hi0 = (c0 * M0H + ((c0 * M0L * INV16) >>> 0)) * INV16 >>> 0;
      const lo0 = Math.imul(PHILOX_M0, c0) >>> 0;
      const hi1 = (c2 * M1H + ((c2 * M1L * INV16) >>> 0)) * INV16 >>> 0;
      const lo1 = Math.imul(PHILOX_M1, c2) >>> 0;
      c0 = (hi1 ^ c1 ^ k0s[r]) >>> 0;
      c1 = lo1;
      c2 = (hi0 ^ c3 ^ k1s[r]) >>> 0;
      c3 = lo0;
    }
    const i = 4 * b;
    y[i] = c0 >>> 8 >= t ? x[i] * s : 0;
    if (i + 1 < n) y[i + 1] = c1 >>> 8 >= t ? x[i + 1] * s : 0;
    if (i + 2 < n) y[i + 2] = c2 >>> 8 >= t ? x[i + 2] * s : 0;
    if (i + 3 < n) y[i + 3] = c3 >>> 8 >= t ? x[i + 3] * s : 0;
  }
}
