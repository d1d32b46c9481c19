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

/** Groups of sixteen elements per iteration of the main loop, their rounds interleaved (see {@link dropoutWat}). */
export const DROPOUT_GROUPS = 2;

/**
 * The module's text. Its one export, `dropout(x, y, n, t, s, k0, k1)`: y[i] for i < n (float32 at byte offsets x and
 * y; y may be x) with keep threshold t, scale s, key words k0 and k1 (as i32 bit patterns).
 *
 * Philox's ten rounds are one chain of dependent operations per group of sixteen elements; the main loop runs
 * {@link DROPOUT_GROUPS} groups with their rounds interleaved, unrolled, so that the chains overlap: [12, 128, 128]
 * took 0.49 ms a group at a time, 0.30 ms two at a time (0.31 with four, 0.33 with eight). The rest runs a group at a
 * time, the last partial one element by element.
 */
export function dropoutWat(shared: boolean): string {
  // One Philox round on group g's 4-lane counters $c0_g..$c3_g with round key ($k0, $k1) (vectors, shared by the groups).
  const round = (g: number) => `
        (local.set $p_${g} (i64x2.extmul_low_i32x4_u (local.get $c0_${g}) (local.get $m0)))
        (local.set $q_${g} (i64x2.extmul_high_i32x4_u (local.get $c0_${g}) (local.get $m0)))
        (local.set $hi0_${g} (i8x16.shuffle ${lanes(1, 3, 5, 7)} (local.get $p_${g}) (local.get $q_${g})))
        (local.set $lo0_${g} (i8x16.shuffle ${lanes(0, 2, 4, 6)} (local.get $p_${g}) (local.get $q_${g})))
        (local.set $p_${g} (i64x2.extmul_low_i32x4_u (local.get $c2_${g}) (local.get $m1)))
        (local.set $q_${g} (i64x2.extmul_high_i32x4_u (local.get $c2_${g}) (local.get $m1)))
        (local.set $hi1_${g} (i8x16.shuffle ${lanes(1, 3, 5, 7)} (local.get $p_${g}) (local.get $q_${g})))
        (local.set $lo1_${g} (i8x16.shuffle ${lanes(0, 2, 4, 6)} (local.get $p_${g}) (local.get $q_${g})))
        (local.set $c0_${g} (v128.xor (v128.xor (local.get $hi1_${g}) (local.get $c1_${g})) (local.get $k0)))
        (local.set $c1_${g} (local.get $lo1_${g}))
        (local.set $c2_${g} (v128.xor (v128.xor (local.get $hi0_${g}) (local.get $c3_${g})) (local.get $k1)))
        (local.set $c3_${g} (local.get $lo0_${g}))`;
  const bump = `
        (local.set $k0 (i32x4.add (local.get $k0) (local.get $w0)))
        (local.set $k1 (i32x4.add (local.get $k1) (local.get $w1)))`;
  // Words (block-major, as the elements are laid out) of group g's 16 elements: the transpose of $c0_g..$c3_g into $e0_g..$e3_g.
  const words = (g: number) => `
        (local.set $p_${g} (i8x16.shuffle ${lanes(0, 4, 1, 5)} (local.get $c0_${g}) (local.get $c1_${g})))
        (local.set $q_${g} (i8x16.shuffle ${lanes(0, 4, 1, 5)} (local.get $c2_${g}) (local.get $c3_${g})))
        (local.set $hi0_${g} (i8x16.shuffle ${lanes(2, 6, 3, 7)} (local.get $c0_${g}) (local.get $c1_${g})))
        (local.set $hi1_${g} (i8x16.shuffle ${lanes(2, 6, 3, 7)} (local.get $c2_${g}) (local.get $c3_${g})))
        (local.set $e0_${g} (i8x16.shuffle ${lanes(0, 1, 4, 5)} (local.get $p_${g}) (local.get $q_${g})))
        (local.set $e1_${g} (i8x16.shuffle ${lanes(2, 3, 6, 7)} (local.get $p_${g}) (local.get $q_${g})))
        (local.set $e2_${g} (i8x16.shuffle ${lanes(0, 1, 4, 5)} (local.get $hi0_${g}) (local.get $hi1_${g})))
        (local.set $e3_${g} (i8x16.shuffle ${lanes(2, 3, 6, 7)} (local.get $hi0_${g}) (local.get $hi1_${g})))`;
  // Keep mask of four words: (word >>> 8) >= t, unsigned.
  const keep = (e: string) => `(i32x4.ge_u (i32x4.shr_u (local.get ${e}) (i32.const 8)) (local.get $tv))`;
  // Group g's sixteen elements from $i, all present.
  const full = (g: number) =>
    [0, 1, 2, 3]
      .map((v) => `(v128.store offset=${64 * g + 16 * v} (local.get $yp) (v128.and ${keep(`$e${v}_${g}`)} (f32x4.mul (v128.load offset=${64 * g + 16 * v} (local.get $xp)) (local.get $sv))))`)
      .join('\n        ');
  // The last, partial group: element by element, reading and writing only the n − i elements that exist.
  const tail = [0, 1, 2, 3]
    .flatMap((v) => [0, 1, 2, 3].map((l) => {
      const j = 4 * v + l;
      return `(if (i32.lt_s (i32.const ${j}) (local.get $rem)) (then
          (f32.store offset=${4 * j} (local.get $yp)
            (select (f32.mul (f32.load offset=${4 * j} (local.get $xp)) (local.get $s)) (f32.const 0)
              (i32.ge_u (i32.shr_u (i32x4.extract_lane ${l} (local.get $e${v}_0)) (i32.const 8)) (local.get $t))))))`;
    }))
    .join('\n        ');
  // Groups 0..G−1 from $i: counters (block numbers $block + 4g), ten interleaved rounds, the words.
  const groups = (G: number) => {
    const gs = Array.from({ length: G }, (_, g) => g);
    return `${gs.map((g) => `(local.set $c0_${g} (i32x4.add (local.get $block) (i32x4.splat (i32.const ${4 * g}))))
      (local.set $c1_${g} (v128.const i32x4 0 0 0 0))
      (local.set $c2_${g} (v128.const i32x4 0 0 0 0))
      (local.set $c3_${g} (v128.const i32x4 0 0 0 0))`).join('\n      ')}
      (local.set $k0 (i32x4.splat (local.get $key0)))
      (local.set $k1 (i32x4.splat (local.get $key1)))
      ${Array.from({ length: 10 }, () => `${gs.map(round).join('')}${bump}`).join('')}
      ${gs.map(words).join('')}
      (local.set $xp (i32.add (local.get $x) (i32.shl (local.get $i) (i32.const 2))))
      (local.set $yp (i32.add (local.get $y) (i32.shl (local.get $i) (i32.const 2))))
      (local.set $rem (i32.sub (local.get $n) (local.get $i)))`;
  };
  const G = DROPOUT_GROUPS;
  const perGroup = ['c0', 'c1', 'c2', 'c3', 'p', 'q', 'hi0', 'lo0', 'hi1', 'lo1', 'e0', 'e1', 'e2', 'e3'];
  return `(module
  ${memoryImport(shared)}
  (func (export "dropout") (param $x i32) (param $y i32) (param $n i32) (param $t i32) (param $s f32) (param $key0 i32) (param $key1 i32)
    (local $i i32) (local $rem i32) (local $xp i32) (local $yp i32)
    ${Array.from({ length: G }, (_, g) => perGroup.map((l) => `(local $${l}_${g} v128)`).join(' ')).join('\n    ')}
    (local $k0 v128) (local $k1 v128)
    (local $m0 v128) (local $m1 v128) (local $w0 v128) (local $w1 v128) (local $tv v128) (local $sv v128) (local $block v128)
    (local.set $m0 (i32x4.splat (i32.const 0xD2511F53)))
    (local.set $m1 (i32x4.splat (i32.const 0xCD9E8D57)))
    (local.set $w0 (i32x4.splat (i32.const 0x9E3779B9)))
    (local.set $w1 (i32x4.splat (i32.const 0xBB67AE85)))
    (local.set $tv (i32x4.splat (local.get $t)))
    (local.set $sv (f32x4.splat (local.get $s)))
    (local.set $block (v128.const i32x4 0 1 2 3))
    (local.set $i (i32.const 0))
    (block $doneG (loop $groupsG
      (br_if $doneG (i32.gt_s (i32.add (local.get $i) (i32.const ${16 * G})) (local.get $n)))
      ${groups(G)}
      ${Array.from({ length: G }, (_, g) => full(g)).join('\n      ')}
      (local.set $block (i32x4.add (local.get $block) (i32x4.splat (i32.const ${4 * G}))))
      (local.set $i (i32.add (local.get $i) (i32.const ${16 * G})))
      (br $groupsG)))
    (block $done (loop $groups
      (br_if $done (i32.ge_s (local.get $i) (local.get $n)))
      ${groups(1)}
      (if (i32.ge_s (local.get $rem) (i32.const 16))
        (then
        ${full(0)})
        (else
        ${tail}))
      (local.set $block (i32x4.add (local.get $block) (i32x4.splat (i32.const 4))))
      (local.set $i (i32.add (local.get $i) (i32.const 16)))
      (br $groups))))
)`;
}
