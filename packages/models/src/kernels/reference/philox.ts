/**
 * The reference for the `PeftkitDropout` kernel: Philox4x32-10 in plain TypeScript, the truth that
 * every backend's dropout kernel (kernels/cpu, kernels/wasm, kernels/webgpu) is tested against.
 *
 * Generator: Philox4x32-10 (Salmon, Moraes, Dror, Shaw, "Parallel random numbers: as easy as 1, 2,
 * 3", SC 2011), with Random123's constants (philox.h): multipliers M0 = 0xD2511F53,
 * M1 = 0xCD9E8D57, Weyl key increments W0 = 0x9E3779B9, W1 = 0xBB67AE85. One round maps counter
 * (c0, c1, c2, c3) and key (k0, k1) to
 *   (hi(M1·c2) ^ c1 ^ k0, lo(M1·c2), hi(M0·c0) ^ c3 ^ k1, lo(M0·c0));
 * the key is bumped by (W0, W1) between rounds (ten rounds, nine bumps).
 *
 * The dropout contract (identical on every backend):
 * - kernel `PeftkitDropout`, inputs `{x}` (float32, any shape), attrs `{rate, seed0, seed1}`
 *   (seed0, seed1: uint32);
 * - for flat element index i: key = [seed0, seed1], counter = [floor(i / 4), 0, 0, 0], word =
 *   output word (i % 4) of that block;
 * - u = (word >>> 8) · 2^-24 in [0, 1); keep iff u >= rate, which in integers is
 *   (word >>> 8) >= ceil(rate · 2^24) ({@link keepThreshold}; rate · 2^24 is exact in float64, so
 *   the two forms agree for every rate);
 * - y = keep ? x · s : 0 with s = fround(1 / fround(1 - rate)) and the product rounded to float32
 *   ({@link dropoutScale}): the same float32 arithmetic as tfjs's `tf.dropout`, which multiplies x by
 *   mask / keepProb;
 * - the mask is never stored: the gradient is the same kernel applied to dy with the same attrs.
 */

/** Random123's Philox4x32 multipliers and Weyl key increments (philox.h). */
export const PHILOX_M0 = 0xd2511f53;
export const PHILOX_M1 = 0xcd9e8d57;
export const PHILOX_W0 = 0x9e3779b9;
export const PHILOX_W1 = 0xbb67ae85;

/**
 * The high 32 bits of the 64-bit product of two uint32 values, exactly (16-bit halves, so every
 * partial product stays below 2^32 and exact in a float64).
 */
export function mulhi32(a: number, b: number): number {
  const al = a & 0xffff;
  const ah = a >>> 16;
  const bl = b & 0xffff;
  const bh = b >>> 16;
  const ll = al * bl;
  const lh = al * bh;
  const hl = ah * bl;
  const hh = ah * bh;
  const mid = (ll >>> 16) + (lh & 0xffff) + (hl & 0xffff);
  return (hh + (lh >>> 16) + (hl >>> 16) + (mid >>> 16)) >>> 0;
}

/**
 * Philox4x32-10 of one counter block under one key.
 *
 * @param counter four uint32 words
 * @param key two uint32 words
 * @returns four uint32 words (Random123's `philox4x32(ctr, key)` with R = 10)
 */
export function philox4x32_10(counter: readonly number[], key: readonly number[]): [number, number, number, number] {
  let c0 = counter[0] >>> 0;
  let c1 = counter[1] >>> 0;
  let c2 = counter[2] >>> 0;
  let c3 = counter[3] >>> 0;
  let k0 = key[0] >>> 0;
  let k1 = key[1] >>> 0;
  for (let round = 0; round < 10; round++) {
    if (round > 0) {
      k0 = (k0 + PHILOX_W0) >>> 0;
      k1 = (k1 + PHILOX_W1) >>> 0;
    }
    const hi0 = mulhi32(PHILOX_M0, c0);
    const lo0 = Math.imul(PHILOX_M0, c0) >>> 0;
    const hi1 = mulhi32(PHILOX_M1, c2);
    const lo1 = Math.imul(PHILOX_M1, c2) >>> 0;
    c0 = (hi1 ^ c1 ^ k0) >>> 0;
    c1 = lo1;
    c2 = (hi0 ^ c3 ^ k1) >>> 0;
    c3 = lo0;
  }
  return [c0, c1, c2, c3];
}

/** The uniform float in [0, 1) of one Philox word: its top 24 bits times 2^-24 (exact in float32). */
export function uniformFromWord(word: number): number {
  return (word >>> 8) * 2 ** -24;
}

/**
 * The integer form of `u >= rate`: keep iff `(word >>> 8) >= keepThreshold(rate)`.
 *
 * @param rate drop probability in [0, 1)
 * @returns ceil(rate · 2^24), in [0, 2^24]
 */
export function keepThreshold(rate: number): number {
  return Math.ceil(rate * 2 ** 24);
}

/** The float32 factor kept elements are multiplied by: fround(1 / fround(1 - rate)). */
export function dropoutScale(rate: number): number {
  return Math.fround(1 / Math.fround(1 - rate));
}

/**
 * The keep mask of `n` elements: 1 where element i is kept, 0 where dropped (see the contract above).
 *
 * @param n number of elements (flat)
 * @param rate drop probability in [0, 1)
 * @param seed0 first key word (uint32)
 * @param seed1 second key word (uint32)
 */
export function dropoutMaskReference(n: number, rate: number, seed0: number, seed1: number): Uint8Array {
  const mask = new Uint8Array(n);
  for (let i = 0; i < n; i++) {
    const block = philox4x32_10([Math.floor(i / 4), 0, 0, 0], [seed0, seed1]);
    mask[i] = uniformFromWord(block[i % 4]) >= rate ? 1 : 0;
  }
  return mask;
}

/**
 * `PeftkitDropout` on a flat float32 array: y = keep ? fround(x · dropoutScale(rate)) : 0.
 *
 * @param x input values (any shape, flattened in row-major order)
 * @param rate drop probability in [0, 1)
 * @param seed0 first key word (uint32)
 * @param seed1 second key word (uint32)
 * @returns a new array of x's length
 * @throws RangeError when rate is outside [0, 1)
 */
export function dropoutReference(x: ArrayLike<number>, rate: number, seed0: number, seed1: number): Float32Array {
  if (!(rate >= 0 && rate < 1)) throw new RangeError(`dropout rate must be in [0, 1), got ${rate}`);
  const mask = dropoutMaskReference(x.length, rate, seed0, seed1);
  const s = dropoutScale(rate);
  const y = new Float32Array(x.length);
  for (let i = 0; i < x.length; i++) y[i] = mask[i] ? x[i] * s : 0;
  return y;
}
