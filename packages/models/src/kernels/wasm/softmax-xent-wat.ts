/**
 * The WebAssembly text of `PeftkitSoftmaxXent` and `PeftkitSoftmaxXentGrad` on WASM (contract:
 * kernels/reference/softmax-xent.ts): one row of the softmax at a time in 128-bit vectors, {@link SOFTMAX_UNROLL}
 * vectors per iteration with their steps interleaved (e^t's polynomial is a long chain of dependent operations; see
 * ./activation-wat.ts). e^t from ./simd-wat.ts.
 */
import { memoryImport } from './wasm-module.js';
import { EXP_LOCALS, EXP_MIN, expSteps, interleave, set, splat, sub, v, vectorLocals } from './simd-wat.js';

/** Vectors per iteration of the exponential's loop. */
export const SOFTMAX_UNROLL = 8;

/**
 * The module's text. Exports:
 *
 * `softmax_row(x, y, n, stats)`: y = softmax(x) over n float32 (byte offsets; y may be x): m = max x,
 * e_j = e^(x_j − m) (x_j − m clamped at −87: e^−87 ≈ 1.6e−38 where float32 would give 0 or a denormal), S = Σ e_j
 * (four lanes per vector, summed in a fixed order), y = e · (1 / S). Stores m and S as float32 at `stats` and
 * `stats` + 4, for the row's logsumexp m + log S.
 *
 * `scale(p, g, n, s)`: g = p · s over n float32 (g may be p).
 */
export function softmaxXentWat(shared: boolean): string {
  const U = SOFTMAX_UNROLL;
  const at = (base: string, u: number) => `(i32.add (local.get ${base}) (i32.add (local.get $o) (i32.const ${16 * u})))`;
  // Lanes of the last partial vector that exist: lane l < rem.
  const laneMask = '(i32x4.lt_s (v128.const i32x4 0 1 2 3) (i32x4.splat (local.get $rem)))';
  const tailLoad = (base: string, fill: string) => `(local.set $x_0 ${fill})
      ${[0, 1, 2].map((l) => `(if (i32.gt_s (local.get $rem) (i32.const ${l})) (then (local.set $x_0 (f32x4.replace_lane ${l} (local.get $x_0) (f32.load offset=${4 * l} (i32.add (local.get ${base}) (local.get $o)))))))`).join('\n      ')}`;
  const tailStore = (base: string, val: string) =>
    [0, 1, 2].map((l) => `(if (i32.gt_s (local.get $rem) (i32.const ${l})) (then (f32.store offset=${4 * l} (i32.add (local.get ${base}) (local.get $o)) (f32x4.extract_lane ${l} ${val}))))`).join('\n      ');
  // e = e^(max(x − m, EXP_MIN)) into $e_u, added to $acc_u.
  const expOf = [set('t', (u) => `(f32x4.pmax ${sub(v('x')(u), '(local.get $mv)')} ${splat(EXP_MIN)})`), ...expSteps('t', 'e')];
  const loops = (unrolled: string, single: string, tail: string) => `(local.set $o (i32.const 0))
    (block $doneU (loop $unrolled
      (br_if $doneU (i32.ge_u (local.get $o) (local.get $endU)))
      ${unrolled}
      (local.set $o (i32.add (local.get $o) (i32.const ${16 * U})))
      (br $unrolled)))
    (block $done (loop $vectors
      (br_if $done (i32.ge_u (local.get $o) (local.get $end)))
      ${single}
      (local.set $o (i32.add (local.get $o) (i32.const 16)))
      (br $vectors)))
    (if (local.get $rem) (then
      ${tail}))`;
  const bounds = `(local.set $end (i32.shl (i32.and (local.get $n) (i32.const -4)) (i32.const 2)))
    (local.set $endU (i32.shl (i32.and (local.get $n) (i32.const ${-4 * U})) (i32.const 2)))
    (local.set $rem (i32.and (local.get $n) (i32.const 3)))`;
  const us = Array.from({ length: U }, (_, u) => u);
  return `(module
  ${memoryImport(shared)}
  (func $scale (export "scale") (param $p i32) (param $g i32) (param $n i32) (param $s f32)
    (local $o i32) (local $end i32) (local $endU i32) (local $rem i32) (local $sv v128) (local $x_0 v128)
    ${bounds}
    (local.set $sv (f32x4.splat (local.get $s)))
    ${loops(
      us.map((u) => `(v128.store offset=${16 * u} (i32.add (local.get $g) (local.get $o)) (f32x4.mul (v128.load offset=${16 * u} (i32.add (local.get $p) (local.get $o))) (local.get $sv)))`).join('\n      '),
      '(v128.store (i32.add (local.get $g) (local.get $o)) (f32x4.mul (v128.load (i32.add (local.get $p) (local.get $o))) (local.get $sv)))',
      `${tailLoad('$p', splat(0))}
      ${tailStore('$g', '(f32x4.mul (local.get $x_0) (local.get $sv))')}`,
    )})

  (func (export "softmax_row") (param $x i32) (param $y i32) (param $n i32) (param $stats i32)
    (local $o i32) (local $end i32) (local $endU i32) (local $rem i32) (local $m f32) (local $sum f32) (local $mv v128) (local $sv v128)
    ${vectorLocals(['x', 'e', 't', 'acc', ...EXP_LOCALS], U)}
    ${bounds}
    ;; the row's maximum: one running maximum per unrolled vector, combined, then the lanes, then the tail
    ${us.map((u) => `(local.set $acc_${u} ${splat(-Infinity)})`).join(' ')}
    ${loops(
      us.map((u) => `(local.set $acc_${u} (f32x4.pmax (local.get $acc_${u}) (v128.load ${at('$x', u)})))`).join('\n      '),
      '(local.set $acc_0 (f32x4.pmax (local.get $acc_0) (v128.load (i32.add (local.get $x) (local.get $o)))))',
      `${tailLoad('$x', splat(-Infinity))}
      (local.set $acc_0 (f32x4.pmax (local.get $acc_0) (local.get $x_0)))`,
    )}
    ${us.slice(1).map((u) => `(local.set $acc_0 (f32x4.pmax (local.get $acc_0) (local.get $acc_${u})))`).join('\n    ')}
    (local.set $m (f32.max (f32.max (f32x4.extract_lane 0 (local.get $acc_0)) (f32x4.extract_lane 1 (local.get $acc_0))) (f32.max (f32x4.extract_lane 2 (local.get $acc_0)) (f32x4.extract_lane 3 (local.get $acc_0)))))
    (local.set $mv (f32x4.splat (local.get $m)))
    ;; e = e^(x − m) into y, summed: one running sum per unrolled vector, combined in order, then the lanes
    ${us.map((u) => `(local.set $acc_${u} ${splat(0)})`).join(' ')}
    ${loops(
      `${interleave([set('x', (u) => `(v128.load ${at('$x', u)})`), ...expOf, set('acc', (u) => `(f32x4.add (local.get $acc_${u}) (local.get $e_${u}))`)], U)}
      ${us.map((u) => `(v128.store ${at('$y', u)} (local.get $e_${u}))`).join('\n      ')}`,
      `${interleave([set('x', () => '(v128.load (i32.add (local.get $x) (local.get $o)))'), ...expOf, set('acc', () => '(f32x4.add (local.get $acc_0) (local.get $e_0))')], 1)}
      (v128.store (i32.add (local.get $y) (local.get $o)) (local.get $e_0))`,
      `${tailLoad('$x', splat(0))}
      ${interleave(expOf, 1)}
      (local.set $e_0 (v128.and (local.get $e_0) ${laneMask}))
      (local.set $acc_0 (f32x4.add (local.get $acc_0) (local.get $e_0)))
      ${tailStore('$y', '(local.get $e_0)')}`,
    )}
    ${us.slice(1).map((u) => `(local.set $acc_0 (f32x4.add (local.get $acc_0) (local.get $acc_${u})))`).join('\n    ')}
    (local.set $sum (f32.add (f32.add (f32.add (f32x4.extract_lane 0 (local.get $acc_0)) (f32x4.extract_lane 1 (local.get $acc_0))) (f32x4.extract_lane 2 (local.get $acc_0))) (f32x4.extract_lane 3 (local.get $acc_0))))
    (f32.store (local.get $stats) (local.get $m))
    (f32.store offset=4 (local.get $stats) (local.get $sum))
    (call $scale (local.get $y) (local.get $y) (local.get $n) (f32.div (f32.const 1) (local.get $sum))))
)`;
}
