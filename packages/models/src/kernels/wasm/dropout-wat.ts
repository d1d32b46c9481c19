/**
 * The WebAssembly text of `PeftkitDropout` on WASM: the contract and the numbers of kernels/reference/philox.ts
 * (Philox4x32-10 keyed by (seed0, seed1), counter block ⌊i / 4⌋, word i mod 4; keep iff word >>> 8 ≥ t;
 * y = keep ? fround(x · s) : 0), four counter blocks (sixteen elements) at a time in 128-bit vectors.
 *
 * Philox's 32 x 32 → 64-bit products are two `i64x2.extmul_*_i32x4_u` per four lanes; their high and low words are
 * gathered back into 4-lane vectors with one shuffle each. After ten rounds the four word vectors (word w of blocks
 * b..b+3) are transposed into element order (block b's four words, then block b+1's, ...). The JavaScript loop it
 * replaces (kernels/cpu/philox-dropout.ts) builds each 64-bit product from four 16-bit ones.
 */
import { memoryImport } from './wasm-module.js';

/** i8x16.shuffle's byte lanes picking 32-bit lanes (0-3 of the first operand, 4-7 of the second). */
const lanes = (...l: number[]) => l.flatMap((x) => [4 * x, 4 * x + 1, 4 * x + 2, 4 * x + 3]).join(' ');

/**
 * The module's text. Its one export, `dropout(x, y, n, t, s, k0, k1)`: y[i] for i < n (float32 at byte offsets x and
 * y; y may be x) with keep threshold t, scale s, key words k0 and k1 (as i32 bit patterns).
 */
export function dropoutWat(shared: boolean): string {
  // One Philox round on the 4-lane counters $c0..$c3 with round key ($k0, $k1) (vectors).
  const round = `
        (local.set $p (i64x2.extmul_low_i32x4_u (local.get $c0) (local.get $m0)))
        (local.set $q (i64x2.extmul_high_i32x4_u (local.get $c0) (local.get $m0)))
        (local.set $hi0 (i8x16.shuffle ${lanes(1, 3, 5, 7)} (local.get $p) (local.get $q)))
        (local.set $lo0 (i8x16.shuffle ${lanes(0, 2, 4, 6)} (local.get $p) (local.get $q)))
        (local.set $p (i64x2.extmul_low_i32x4_u (local.get $c2) (local.get $m1)))
        (local.set $q (i64x2.extmul_high_i32x4_u (local.get $c2) (local.get $m1)))
        (local.set $hi1 (i8x16.shuffle ${lanes(1, 3, 5, 7)} (local.get $p) (local.get $q)))
        (local.set $lo1 (i8x16.shuffle ${lanes(0, 2, 4, 6)} (local.get $p) (local.get $q)))
        (local.set $c0 (v128.xor (v128.xor (local.get $hi1) (local.get $c1)) (local.get $k0)))
        (local.set $c1 (local.get $lo1))
        (local.set $c2 (v128.xor (v128.xor (local.get $hi0) (local.get $c3)) (local.get $k1)))
        (local.set $c3 (local.get $lo0))
        (local.set $k0 (i32x4.add (local.get $k0) (local.get $w0)))
        (local.set $k1 (i32x4.add (local.get $k1) (local.get $w1)))`;
  // Words (block-major, as the elements are laid out) of the 16 elements from $i: the transpose of $c0..$c3 into $e0..$e3.
  const words = `
        (local.set $p (i8x16.shuffle ${lanes(0, 4, 1, 5)} (local.get $c0) (local.get $c1)))
        (local.set $q (i8x16.shuffle ${lanes(0, 4, 1, 5)} (local.get $c2) (local.get $c3)))
        (local.set $hi0 (i8x16.shuffle ${lanes(2, 6, 3, 7)} (local.get $c0) (local.get $c1)))
        (local.set $hi1 (i8x16.shuffle ${lanes(2, 6, 3, 7)} (local.get $c2) (local.get $c3)))
        (local.set $e0 (i8x16.shuffle ${lanes(0, 1, 4, 5)} (local.get $p) (local.get $q)))
        (local.set $e1 (i8x16.shuffle ${lanes(2, 3, 6, 7)} (local.get $p) (local.get $q)))
        (local.set $e2 (i8x16.shuffle ${lanes(0, 1, 4, 5)} (local.get $hi0) (local.get $hi1)))
        (local.set $e3 (i8x16.shuffle ${lanes(2, 3, 6, 7)} (local.get $hi0) (local.get $hi1)))`;
  // Keep mask of four words: (word >>> 8) >= t, unsigned.
  const keep = (e: string) => `(i32x4.ge_u (i32x4.shr_u (local.get ${e}) (i32.const 8)) (local.get $tv))`;
  const full = [0, 1, 2, 3]
    .map((v) => `(v128.store offset=${16 * v} (local.get $yp) (v128.and ${keep(`$e${v}`)} (f32x4.mul (v128.load offset=${16 * v} (local.get $xp)) (local.get $sv))))`)
    .join('\n        ');
  // The last, partial group: element by element, reading and writing only the n − i elements that exist.
  const tail = [0, 1, 2, 3]
    .flatMap((v) => [0, 1, 2, 3].map((l) => {
      const j = 4 * v + l;
      return `(if (i32.lt_s (i32.const ${j}) (local.get $rem)) (then
          (f32.store offset=${4 * j} (local.get $yp)
            (select (f32.mul (f32.load offset=${4 * j} (local.get $xp)) (local.get $s)) (f32.const 0)
              (i32.ge_u (i32.shr_u (i32x4.extract_lane ${l} (local.get $e${v})) (i32.const 8)) (local.get $t))))))`;
    }))
    .join('\n        ');
  return `(module
  ${memoryImport(shared)}
  (func (export "dropout") (param $x i32) (param $y i32) (param $n i32) (param $t i32) (param $s f32) (param $key0 i32) (param $key1 i32)
    (local $i i32) (local $r i32) (local $rem i32) (local $xp i32) (local $yp i32)
    (local $c0 v128) (local $c1 v128) (local $c2 v128) (local $c3 v128) (local $k0 v128) (local $k1 v128)
    (local $p v128) (local $q v128) (local $hi0 v128) (local $lo0 v128) (local $hi1 v128) (local $lo1 v128)
    (local $e0 v128) (local $e1 v128) (local $e2 v128) (local $e3 v128)
    (local $m0 v128) (local $m1 v128) (local $w0 v128) (local $w1 v128) (local $tv v128) (local $sv v128) (local $block v128)
    (local.set $m0 (i32x4.splat (i32.const 0xD2511F53)))
    (local.set $m1 (i32x4.splat (i32.const 0xCD9E8D57)))
    (local.set $w0 (i32x4.splat (i32.const 0x9E3779B9)))
    (local.set $w1 (i32x4.splat (i32.const 0xBB67AE85)))
    (local.set $tv (i32x4.splat (local.get $t)))
    (local.set $sv (f32x4.splat (local.get $s)))
    (local.set $block (v128.const i32x4 0 1 2 3))
    (local.set $i (i32.const 0))
    (block $done (loop $groups
      (br_if $done (i32.ge_s (local.get $i) (local.get $n)))
      (local.set $c0 (local.get $block))
      (local.set $c1 (v128.const i32x4 0 0 0 0))
      (local.set $c2 (v128.const i32x4 0 0 0 0))
      (local.set $c3 (v128.const i32x4 0 0 0 0))
      (local.set $k0 (i32x4.splat (local.get $key0)))
      (local.set $k1 (i32x4.splat (local.get $key1)))
      (local.set $r (i32.const 0))
      (block $rdone (loop $rounds
        (br_if $rdone (i32.eq (local.get $r) (i32.const 10)))
        ${round}
        (local.set $r (i32.add (local.get $r) (i32.const 1)))
        (br $rounds)))
      ${words}
      (local.set $xp (i32.add (local.get $x) (i32.shl (local.get $i) (i32.const 2))))
      (local.set $yp (i32.add (local.get $y) (i32.shl (local.get $i) (i32.const 2))))
      (local.set $rem (i32.sub (local.get $n) (local.get $i)))
      (if (i32.ge_s (local.get $rem) (i32.const 16))
        (then
        ${full})
        (else
        ${tail}))
      (local.set $block (i32x4.add (local.get $block) (i32x4.splat (i32.const 4))))
      (local.set $i (i32.add (local.get $i) (i32.const 16)))
      (br $groups))))
)`;
}
