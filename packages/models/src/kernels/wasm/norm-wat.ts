/**
 * The WebAssembly text of `PeftkitNorm` and `PeftkitNormGrad` on WASM (contract: kernels/reference/norm.ts): a row at
 * a time, each pass over the row in 128-bit vectors and then its last D mod 4 elements one by one with the same
 * arithmetic. Row sums run in one 4-lane accumulator, its lanes added in order, then the remainder in order: the
 * result does not depend on anything but the row.
 */
import { memoryImport } from './wasm-module.js';
import { vectorsThenElements } from './simd-wat.js';

/** `(v128.load ...)` / `(f32.load ...)` at byte offset $o from $<base>: a row, or the weight (one row of D). */
const vload = (base: string) => `(v128.load (i32.add (local.get $${base}) (local.get $o)))`;
const sload = (base: string) => `(f32.load (i32.add (local.get $${base}) (local.get $o)))`;


/** The sum of accumulator vector $acc's lanes in order, plus the scalar $rest. */
const lanesPlus = (acc: string, rest: string) =>
  `(f32.add (f32.add (f32.add (f32.add (f32x4.extract_lane 0 (local.get ${acc})) (f32x4.extract_lane 1 (local.get ${acc}))) (f32x4.extract_lane 2 (local.get ${acc}))) (f32x4.extract_lane 3 (local.get ${acc}))) (local.get ${rest}))`;

/** The row loop: sets $end and $endV (bytes of a row and of its whole vectors), $xr (and the other row bases listed) for row $i of D floats, runs `body`. */
function rows(bases: string[], body: string): string {
  return `(local.set $end (i32.shl (local.get $D) (i32.const 2)))
    (local.set $endV (i32.shl (i32.and (local.get $D) (i32.const -4)) (i32.const 2)))
    (local.set $Df (f32.convert_i32_s (local.get $D)))
    (local.set $i (i32.const 0))
    (block $rdone (loop $row
      (br_if $rdone (i32.ge_s (local.get $i) (local.get $rows)))
      ${bases.map((b) => `(local.set $${b}r (i32.add (local.get $${b}) (i32.mul (local.get $i) (local.get $end))))`).join('\n      ')}
      ${body}
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br $row)))`;
}

const COMMON_LOCALS = '(local $i i32) (local $o i32) (local $end i32) (local $endV i32) (local $Df f32) (local $acc v128) (local $acc2 v128) (local $s f32) (local $s2 f32) (local $t f32) (local $g f32) (local $xh f32) (local $vg v128) (local $vxh v128)';

/**
 * The module's text. Exports (float32 arrays at byte offsets; statistics one float per row):
 * `ln_fwd(x, w, b, y, mu, sigma, rows, D, eps)`, `rms_fwd(x, w, y, r, rows, D, eps)`,
 * `ln_bwd(x, mu, sigma, w, dy, dx, rows, D)`, `rms_bwd(x, r, w, dy, dx, rows, D)`.
 */
export function normWat(shared: boolean): string {
  const stat = (arr: string) => `(i32.add (local.get $${arr}) (i32.shl (local.get $i) (i32.const 2)))`;
  return `(module
  ${memoryImport(shared)}
  (func (export "ln_fwd") (param $x i32) (param $w i32) (param $b i32) (param $y i32) (param $mu i32) (param $sigma i32) (param $rows i32) (param $D i32) (param $eps f32)
    ${COMMON_LOCALS} (local $xr i32) (local $yr i32) (local $m f32) (local $sd f32) (local $vm v128) (local $vs v128)
    ${rows(['x', 'y'], `;; μ = Σx / D
      (local.set $acc (v128.const f32x4 0 0 0 0)) (local.set $s (f32.const 0))
      ${vectorsThenElements('m', `(local.set $acc (f32x4.add (local.get $acc) ${vload('xr')}))`, `(local.set $s (f32.add (local.get $s) ${sload('xr')}))`)}
      (local.set $m (f32.div ${lanesPlus('$acc', '$s')} (local.get $Df)))
      (local.set $vm (f32x4.splat (local.get $m)))
      ;; σ = √(Σ(x − μ)² / D + eps)
      (local.set $acc (v128.const f32x4 0 0 0 0)) (local.set $s (f32.const 0))
      ${vectorsThenElements('v', `(local.set $vg (f32x4.sub ${vload('xr')} (local.get $vm))) (local.set $acc (f32x4.add (local.get $acc) (f32x4.mul (local.get $vg) (local.get $vg))))`, `(local.set $t (f32.sub ${sload('xr')} (local.get $m))) (local.set $s (f32.add (local.get $s) (f32.mul (local.get $t) (local.get $t))))`)}
      (local.set $sd (f32.sqrt (f32.add (f32.div ${lanesPlus('$acc', '$s')} (local.get $Df)) (local.get $eps))))
      (local.set $vs (f32x4.splat (local.get $sd)))
      (f32.store ${stat('mu')} (local.get $m))
      (f32.store ${stat('sigma')} (local.get $sd))
      ;; y = ((x − μ) / σ) · w + b
      ${vectorsThenElements('y', `(v128.store (i32.add (local.get $yr) (local.get $o)) (f32x4.add (f32x4.mul (f32x4.div (f32x4.sub ${vload('xr')} (local.get $vm)) (local.get $vs)) ${vload('w')}) ${vload('b')}))`, `(f32.store (i32.add (local.get $yr) (local.get $o)) (f32.add (f32.mul (f32.div (f32.sub ${sload('xr')} (local.get $m)) (local.get $sd)) ${sload('w')}) ${sload('b')}))`)}`)})

  (func (export "rms_fwd") (param $x i32) (param $w i32) (param $y i32) (param $r i32) (param $rows i32) (param $D i32) (param $eps f32)
    ${COMMON_LOCALS} (local $xr i32) (local $yr i32) (local $rr f32) (local $vr v128)
    ${rows(['x', 'y'], `;; r = 1 / √(Σx² / D + eps)
      (local.set $acc (v128.const f32x4 0 0 0 0)) (local.set $s (f32.const 0))
      ${vectorsThenElements('m', `(local.set $vg ${vload('xr')}) (local.set $acc (f32x4.add (local.get $acc) (f32x4.mul (local.get $vg) (local.get $vg))))`, `(local.set $t ${sload('xr')}) (local.set $s (f32.add (local.get $s) (f32.mul (local.get $t) (local.get $t))))`)}
      (local.set $rr (f32.div (f32.const 1) (f32.sqrt (f32.add (f32.div ${lanesPlus('$acc', '$s')} (local.get $Df)) (local.get $eps)))))
      (local.set $vr (f32x4.splat (local.get $rr)))
      (f32.store ${stat('r')} (local.get $rr))
      ;; y = (x · r) · w
      ${vectorsThenElements('y', `(v128.store (i32.add (local.get $yr) (local.get $o)) (f32x4.mul (f32x4.mul ${vload('xr')} (local.get $vr)) ${vload('w')}))`, `(f32.store (i32.add (local.get $yr) (local.get $o)) (f32.mul (f32.mul ${sload('xr')} (local.get $rr)) ${sload('w')}))`)}`)})

  (func (export "ln_bwd") (param $x i32) (param $mu i32) (param $sigma i32) (param $w i32) (param $dy i32) (param $dx i32) (param $rows i32) (param $D i32)
    ${COMMON_LOCALS} (local $xr i32) (local $dyr i32) (local $dxr i32) (local $m f32) (local $sd f32) (local $vm v128) (local $vs v128) (local $mg v128) (local $mgx v128) (local $fg f32) (local $fgx f32)
    ${rows(['x', 'dy', 'dx'], `(local.set $m (f32.load ${stat('mu')}))
      (local.set $sd (f32.load ${stat('sigma')}))
      (local.set $vm (f32x4.splat (local.get $m)))
      (local.set $vs (f32x4.splat (local.get $sd)))
      ;; Σ gw and Σ gw · x̂, gw = dy · w, x̂ = (x − μ) / σ
      (local.set $acc (v128.const f32x4 0 0 0 0)) (local.set $acc2 (v128.const f32x4 0 0 0 0)) (local.set $s (f32.const 0)) (local.set $s2 (f32.const 0))
      ${vectorsThenElements('s', `(local.set $vg (f32x4.mul ${vload('dyr')} ${vload('w')}))
        (local.set $vxh (f32x4.div (f32x4.sub ${vload('xr')} (local.get $vm)) (local.get $vs)))
        (local.set $acc (f32x4.add (local.get $acc) (local.get $vg)))
        (local.set $acc2 (f32x4.add (local.get $acc2) (f32x4.mul (local.get $vg) (local.get $vxh))))`, `(local.set $g (f32.mul ${sload('dyr')} ${sload('w')}))
        (local.set $xh (f32.div (f32.sub ${sload('xr')} (local.get $m)) (local.get $sd)))
        (local.set $s (f32.add (local.get $s) (local.get $g)))
        (local.set $s2 (f32.add (local.get $s2) (f32.mul (local.get $g) (local.get $xh))))`)}
      (local.set $fg (f32.div ${lanesPlus('$acc', '$s')} (local.get $Df)))
      (local.set $fgx (f32.div ${lanesPlus('$acc2', '$s2')} (local.get $Df)))
      (local.set $mg (f32x4.splat (local.get $fg)))
      (local.set $mgx (f32x4.splat (local.get $fgx)))
      ;; dx = (gw − mean(gw) − x̂ · mean(gw · x̂)) / σ
      ${vectorsThenElements('d', `(local.set $vg (f32x4.mul ${vload('dyr')} ${vload('w')}))
        (local.set $vxh (f32x4.div (f32x4.sub ${vload('xr')} (local.get $vm)) (local.get $vs)))
        (v128.store (i32.add (local.get $dxr) (local.get $o)) (f32x4.div (f32x4.sub (f32x4.sub (local.get $vg) (local.get $mg)) (f32x4.mul (local.get $vxh) (local.get $mgx))) (local.get $vs)))`, `(local.set $g (f32.mul ${sload('dyr')} ${sload('w')}))
        (local.set $xh (f32.div (f32.sub ${sload('xr')} (local.get $m)) (local.get $sd)))
        (f32.store (i32.add (local.get $dxr) (local.get $o)) (f32.div (f32.sub (f32.sub (local.get $g) (local.get $fg)) (f32.mul (local.get $xh) (local.get $fgx))) (local.get $sd)))`)}`)})

  (func (export "rms_bwd") (param $x i32) (param $r i32) (param $w i32) (param $dy i32) (param $dx i32) (param $rows i32) (param $D i32)
    ${COMMON_LOCALS} (local $xr i32) (local $dyr i32) (local $dxr i32) (local $rr f32) (local $vr v128) (local $mgx v128) (local $fgx f32)
    ${rows(['x', 'dy', 'dx'], `(local.set $rr (f32.load ${stat('r')}))
      (local.set $vr (f32x4.splat (local.get $rr)))
      ;; Σ gw · x̂, gw = dy · w, x̂ = x · r
      (local.set $acc (v128.const f32x4 0 0 0 0)) (local.set $s (f32.const 0))
      ${vectorsThenElements('s', `(local.set $acc (f32x4.add (local.get $acc) (f32x4.mul (f32x4.mul ${vload('dyr')} ${vload('w')}) (f32x4.mul ${vload('xr')} (local.get $vr)))))`, `(local.set $s (f32.add (local.get $s) (f32.mul (f32.mul ${sload('dyr')} ${sload('w')}) (f32.mul ${sload('xr')} (local.get $rr)))))`)}
      (local.set $fgx (f32.div ${lanesPlus('$acc', '$s')} (local.get $Df)))
      (local.set $mgx (f32x4.splat (local.get $fgx)))
      ;; dx = r · (gw − x̂ · mean(gw · x̂))
      ${vectorsThenElements('d', `(v128.store (i32.add (local.get $dxr) (local.get $o)) (f32x4.mul (local.get $vr) (f32x4.sub (f32x4.mul ${vload('dyr')} ${vload('w')}) (f32x4.mul (f32x4.mul ${vload('xr')} (local.get $vr)) (local.get $mgx)))))`, `(f32.store (i32.add (local.get $dxr) (local.get $o)) (f32.mul (local.get $rr) (f32.sub (f32.mul ${sload('dyr')} ${sload('w')}) (f32.mul (f32.mul ${sload('xr')} (local.get $rr)) (local.get $fgx)))))`)}`)})
)`;
}
