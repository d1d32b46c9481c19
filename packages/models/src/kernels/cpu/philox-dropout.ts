/**
 * The `PeftkitDropout` arithmetic as a fast loop over typed arrays: Philox4x32-10 keyed by
 * (seed0, seed1), one counter block per 4 elements, with the contract and the numbers of
 * kernels/reference/philox.ts (which it is tested against), written for speed:
 * - the ten round keys are the same for every block, so they are computed once;
 * - hi(M · c) from M's 16-bit halves with int32 multiplications only;
 * - one block gives the four words of four consecutive elements.
 * Shared by the CPU kernel (over the backend's arrays) and the WASM kernel (over the WASM heap).
 */
import { dropoutScale, keepThreshold, PHILOX_M0, PHILOX_M1, PHILOX_W0, PHILOX_W1 } from '../reference/philox.js';

// M0 and M1 split into 16-bit halves: hi(M · c) from four 16 x 16-bit products, all int32 ops
// (Math.imul), which V8 keeps in registers; float64 products were 2 to 4 times slower here.
const M0L = PHILOX_M0 & 0xffff;
const M0H = PHILOX_M0 >>> 16;
const M1L = PHILOX_M1 & 0xffff;
const M1H = PHILOX_M1 >>> 16;

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
  // Words are kept as int32 bit patterns; `>>> 8` reads the top 24 bits as unsigned.
  const k0s = new Int32Array(10);
  const k1s = new Int32Array(10);
  k0s[0] = seed0 | 0;
  k1s[0] = seed1 | 0;
  for (let r = 1; r < 10; r++) {
    k0s[r] = (k0s[r - 1] + PHILOX_W0) | 0;
    k1s[r] = (k1s[r - 1] + PHILOX_W1) | 0;
  }
  const blocks = Math.ceil(n / 4);
  for (let b = 0; b < blocks; b++) {
    let c0 = b | 0;
    let c1 = 0;
    let c2 = 0;
    let c3 = 0;
    for (let r = 0; r < 10; r++) {
      const a0 = c0 & 0xffff;
      const a1 = c0 >>> 16;
      let ll = Math.imul(a0, M0L) >>> 0;
      let lh = Math.imul(a0, M0H) >>> 0;
      let hl = Math.imul(a1, M0L) >>> 0;
      let hh = Math.imul(a1, M0H) >>> 0;
      let mid = (ll >>> 16) + (lh & 0xffff) + (hl & 0xffff);
      const hi0 = (hh + (lh >>> 16) + (hl >>> 16) + (mid >>> 16)) | 0;
      const lo0 = Math.imul(PHILOX_M0, c0);
      const b0 = c2 & 0xffff;
      const b1 = c2 >>> 16;
      ll = Math.imul(b0, M1L) >>> 0;
      lh = Math.imul(b0, M1H) >>> 0;
      hl = Math.imul(b1, M1L) >>> 0;
      hh = Math.imul(b1, M1H) >>> 0;
      mid = (ll >>> 16) + (lh & 0xffff) + (hl & 0xffff);
      const hi1 = (hh + (lh >>> 16) + (hl >>> 16) + (mid >>> 16)) | 0;
      const lo1 = Math.imul(PHILOX_M1, c2);
      c0 = hi1 ^ c1 ^ k0s[r];
      c1 = lo1;
      c2 = hi0 ^ c3 ^ k1s[r];
      c3 = lo0;
    }
    const i = 4 * b;
    y[i] = c0 >>> 8 >= t ? x[i] * s : 0;
    if (i + 1 < n) y[i + 1] = c1 >>> 8 >= t ? x[i + 1] * s : 0;
    if (i + 2 < n) y[i + 2] = c2 >>> 8 >= t ? x[i + 2] * s : 0;
    if (i + 3 < n) y[i + 3] = c3 >>> 8 >= t ? x[i + 3] * s : 0;
  }
}
