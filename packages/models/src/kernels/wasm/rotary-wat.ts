/**
 * The WebAssembly text of `PeftkitRotary` on WASM (contract: kernels/reference/rotary.ts): for each row of D (a head's
 * position), both halves four elements at a time, then the last h mod 4 one by one, h = D / 2. Float32 products and
 * sums in the order of the composed ops (x cos, then rotate_half(x) sin, then their sum), so the values are theirs.
 */
import { memoryImport } from './wasm-module.js';
import { vectorsThenElements } from './simd-wat.js';

/**
 * The module's text. Its export `rotary(x, cos, sin, y, B, H, T, D, csBatch, transpose)`: y = x cos + rotate_half(x) sin
 * (transpose 0) or its transposed map (1) for x [B, H, T, D] and cos/sin [csBatch, 1, T, D], float32 at byte offsets.
 */
export function rotaryWat(shared: boolean): string {
  // One step over lanes (4 floats, v128 ops) or one float (f32 ops) at byte offset $o within the half.
  const step = (w: 'v' | 's') => {
    const T = w === 'v' ? 'v128' : 'f32';
    const mul = w === 'v' ? 'f32x4.mul' : 'f32.mul';
    const add = w === 'v' ? 'f32x4.add' : 'f32.add';
    const sub = w === 'v' ? 'f32x4.sub' : 'f32.sub';
    const ld = (base: string, half: boolean) => `(${T}.load (i32.add (i32.add (local.get ${base}) (local.get $o)) ${half ? '(local.get $hb)' : '(i32.const 0)'}))`;
    const st = (half: boolean, v: string) => `(${T}.store (i32.add (i32.add (local.get $yr) (local.get $o)) ${half ? '(local.get $hb)' : '(i32.const 0)'}) ${v})`;
    // forward: y1 = x1 c1 − x2 s1, y2 = x2 c2 + x1 s2; transposed: y1 = x1 c1 + x2 s2, y2 = x2 c2 − x1 s1.
    return `(if (local.get $transpose)
          (then
            ${st(false, `(${add} (${mul} ${ld('$xr', false)} ${ld('$cr', false)}) (${mul} ${ld('$xr', true)} ${ld('$sr', true)}))`)}
            ${st(true, `(${sub} (${mul} ${ld('$xr', true)} ${ld('$cr', true)}) (${mul} ${ld('$xr', false)} ${ld('$sr', false)}))`)})
          (else
            ${st(false, `(${sub} (${mul} ${ld('$xr', false)} ${ld('$cr', false)}) (${mul} ${ld('$xr', true)} ${ld('$sr', false)}))`)}
            ${st(true, `(${add} (${mul} ${ld('$xr', true)} ${ld('$cr', true)}) (${mul} ${ld('$xr', false)} ${ld('$sr', true)}))`)}))`;
  };
  return `(module
  ${memoryImport(shared)}
  (func (export "rotary") (param $x i32) (param $cos i32) (param $sin i32) (param $y i32) (param $B i32) (param $H i32) (param $T i32) (param $D i32) (param $csBatch i32) (param $transpose i32)
    (local $b i32) (local $n i32) (local $t i32) (local $o i32) (local $hb i32) (local $hv i32) (local $row i32) (local $cs i32)
    (local $xr i32) (local $yr i32) (local $cr i32) (local $sr i32)
    (local.set $hb (i32.shl (i32.shr_u (local.get $D) (i32.const 1)) (i32.const 2)))
    (local.set $hv (i32.and (local.get $hb) (i32.const -16)))
    (local.set $row (i32.shl (local.get $D) (i32.const 2)))
    (block $bdone (loop $bl
      (br_if $bdone (i32.ge_s (local.get $b) (local.get $B)))
      (local.set $n (i32.const 0))
      (block $ndone (loop $nl
        (br_if $ndone (i32.ge_s (local.get $n) (local.get $H)))
        (local.set $t (i32.const 0))
        (block $tdone (loop $tl
          (br_if $tdone (i32.ge_s (local.get $t) (local.get $T)))
          (local.set $xr (i32.add (local.get $x) (i32.mul (i32.add (i32.mul (i32.add (i32.mul (local.get $b) (local.get $H)) (local.get $n)) (local.get $T)) (local.get $t)) (local.get $row))))
          (local.set $yr (i32.add (local.get $y) (i32.sub (local.get $xr) (local.get $x))))
          (local.set $cs (i32.mul (i32.add (i32.mul (select (i32.const 0) (local.get $b) (i32.eq (local.get $csBatch) (i32.const 1))) (local.get $T)) (local.get $t)) (local.get $row)))
          (local.set $cr (i32.add (local.get $cos) (local.get $cs)))
          (local.set $sr (i32.add (local.get $sin) (local.get $cs)))
          ${vectorsThenElements('', step('v'), step('s'), '$hv', '$hb')}
          (local.set $t (i32.add (local.get $t) (i32.const 1)))
          (br $tl)))
        (local.set $n (i32.add (local.get $n) (i32.const 1)))
        (br $nl)))
      (local.set $b (i32.add (local.get $b) (i32.const 1)))
      (br $bl))))
)`;
}
