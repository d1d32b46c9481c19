/**
 * IEEE-754 binary32 arithmetic in JavaScript, for reproducing what bitsandbytes' CUDA kernels and
 * PyTorch compute in float32.
 *
 * JS numbers are binary64. For two float32 operands, `+ - * /` computed in binary64 and then
 * rounded once to binary32 (`Math.fround`) give the correctly rounded binary32 result (binary64 has
 * more than 2·24 + 2 bits of precision: Figueroa, "When is double rounding innocuous?", 1995).
 * A fused multiply-add needs more care: see {@link fmaF32}.
 */

/** Rounds to the nearest float32 (ties to even). */
export const f32 = Math.fround;

/** The float32 next to `x` (a float32) in the direction of `toward`. */
function nextF32(x: number, toward: number): number {
  if (x === toward) return x;
  const b = new Float32Array(1);
  const u = new Uint32Array(b.buffer);
  if (x === 0) {
    u[0] = 1; // smallest subnormal
    return toward > 0 ? b[0] : -b[0];
  }
  b[0] = x;
  // Moving away from zero increments the magnitude bits; toward zero decrements them.
  if ((toward > x) === (x > 0)) u[0] += 1;
  else u[0] -= 1;
  return b[0];
}

/**
 * `a * b + c` rounded once to float32 (a fused multiply-add, as compilers emit `vfmadd` for
 * `c + a * b` when they may contract). `a`, `b`, `c` must be float32 values.
 *
 * The product of two float32 values is exact in binary64; the sum `p + c` is split exactly into
 * `s + e` (Knuth's TwoSum), and `s + e` is then rounded to float32, correcting the one case where
 * rounding `s` alone is wrong: `s` exactly halfway between two float32 values while `e` is not zero.
 */
export function fmaF32(a: number, b: number, c: number): number {
  const p = a * b; // exact
  const s = p + c;
  const bb = s - p;
  const e = p - (s - bb) + (c - bb); // s + e === p + c exactly
  const r = Math.fround(s);
  if (e === 0 || r === s) return r;
  const other = nextF32(r, s);
  if (Math.abs(s - r) !== Math.abs(other - s)) return r; // not a tie: s's rounding is right
  // s is exactly halfway: the true value s + e lies on e's side.
  return (e > 0) === (other > r) ? other : r;
}
