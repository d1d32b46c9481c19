/**
 * The WebAssembly text of `PeftkitAdamW` on WASM (contract: kernels/reference/adamw.ts): four elements at a time,
 * then the last n mod 4 one by one, with the float32 operations of the composed ops in their order (IEEE multiply,
 * add, divide and square root are exact roundings, so the bits are theirs).
 */
import { memoryImport } from './wasm-module.js';
import { vectorsThenElements } from './simd-wat.js';

/**
 * The module's text. Its export `adamw(p, g, m, v, pOut, mOut, vOut, n, b1, nb1, b2, nb2, eps, decay, bc2, step)`:
 * float32 arrays at byte offsets and the update's float32 scalars (nb1 = 1 − β1, nb2 = 1 − β2).
 */
export function adamWWat(shared: boolean): string {
  const body = (w: 'v' | 's') => {
    const T = w === 'v' ? 'v128' : 'f32';
    const op = (name: string) => (w === 'v' ? `f32x4.${name}` : `f32.${name}`);
    const ld = (base: string) => `(${T}.load (i32.add (local.get ${base}) (local.get $o)))`;
    const k = (name: string) => (w === 'v' ? `(local.get $v${name})` : `(local.get $${name})`);
    const st = (base: string, val: string) => `(${T}.store (i32.add (local.get ${base}) (local.get $o)) ${val})`;
    const m1 = `(${op('add')} (${op('mul')} ${ld('$m')} ${k('b1')}) (${op('mul')} ${ld('$g')} ${k('nb1')}))`;
    const v1 = `(${op('add')} (${op('mul')} ${ld('$v')} ${k('b2')}) (${op('mul')} (${op('mul')} ${ld('$g')} ${ld('$g')}) ${k('nb2')}))`;
    return `(local.set $${w}m1 ${m1})
        (local.set $${w}v1 ${v1})
        ${st('$mo', `(local.get $${w}m1)`)}
        ${st('$vo', `(local.get $${w}v1)`)}
        ${st('$po', `(${op('sub')} (${op('mul')} ${ld('$p')} ${k('decay')}) (${op('mul')} (${op('div')} (local.get $${w}m1) (${op('add')} (${op('div')} (${op('sqrt')} (local.get $${w}v1)) ${k('bc2')}) ${k('eps')})) ${k('step')}))`)}`;
  };
  const scalars = ['b1', 'nb1', 'b2', 'nb2', 'eps', 'decay', 'bc2', 'step'];
  return `(module
  ${memoryImport(shared)}
  (func (export "adamw") (param $p i32) (param $g i32) (param $m i32) (param $v i32) (param $po i32) (param $mo i32) (param $vo i32) (param $n i32)
    ${scalars.map((s) => `(param $${s} f32)`).join(' ')}
    (local $o i32) (local $endV i32) (local $end i32) (local $vm1 v128) (local $vv1 v128) (local $sm1 f32) (local $sv1 f32)
    ${scalars.map((s) => `(local $v${s} v128)`).join(' ')}
    ${scalars.map((s) => `(local.set $v${s} (f32x4.splat (local.get $${s})))`).join('\n    ')}
    (local.set $end (i32.shl (local.get $n) (i32.const 2)))
    (local.set $endV (i32.shl (i32.and (local.get $n) (i32.const -4)) (i32.const 2)))
    ${vectorsThenElements('', body('v'), body('s'))})
)`;
}
