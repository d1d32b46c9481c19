/**
 * The WebAssembly text of `PeftkitActivation` and `PeftkitActivationGrad` on WASM (contract: kernels/reference/activation.ts),
 * in 128-bit vectors of four elements, {@link UNROLL} vectors per iteration with their steps interleaved: one vector's
 * chain of dependent operations (the polynomial, the division) is about 90 cycles long, so one at a time the loop
 * waited on latency: GELU over [128, 3072] took 1.0 ms, 0.64 ms with 4 vectors, 0.57 ms with 8 (XNNPACK's sigmoid
 * alone 0.50 ms; the composed GELU 1.06 ms). Then single vectors, then
 * the last 1-3 elements through the same vector code with the lanes they fill: every element gets the same
 * operations.
 *
 * σ(z) from e^−|z| (see `sigmoid`; e^t: ./simd-wat.ts). pmax, not max: WebAssembly's max orders NaN and −0, which
 * costs V8 several instructions.
 */
import { memoryImport } from './wasm-module.js';
import { add, EXP_LOCALS, EXP_MIN, expSteps, interleave, mul, ONE, set, splat, v, vectorLocals, type Step } from './simd-wat.js';
import { GELU_TANH_C1, GELU_TANH_C3, type ActivationKernelFn } from '../reference/activation.js';

/** Vectors per iteration of the main loop. */
export const UNROLL = 8;

/** The vector locals the steps use (each per unrolled vector). */
const LOCALS = ['x', 'dy', 'x2', 'z', 'out', 's', 'c', 't', 'p', ...EXP_LOCALS];

/**
 * Steps setting $s = σ(z) and $c = 1 − σ(z) from $z, both without cancellation. With a = e^−|z| (at most 1, so no
 * overflow) and q = 1 / (1 + a): σ(|z|) = q and σ(−|z|) = a q, and z's sign picks which is σ(z). |z| is clamped to
 * 87 (σ(−87) ≈ 1.6e−38, nothing in float32 sums).
 */
const sigmoid: Step[] = [
  set('t', (u) => `(f32x4.pmax (f32x4.neg (f32x4.abs ${v('z')(u)})) ${splat(EXP_MIN)})`),
  ...expSteps('t', 'p'),
  set('q', (u) => `(f32x4.div ${ONE} ${add(ONE, v('p')(u))})`),
  set('p', (u) => mul(v('p')(u), v('q')(u))),
  set('n', (u) => `(f32x4.ge ${v('z')(u)} ${splat(0)})`),
  set('s', (u) => `(v128.bitselect ${v('q')(u)} ${v('p')(u)} ${v('n')(u)})`),
  set('c', (u) => `(v128.bitselect ${v('p')(u)} ${v('q')(u)} ${v('n')(u)})`),
];

/** z = x (C1 + C3 x²), the tanh form's argument (2u), keeping x² in $x2. */
const geluZ: Step[] = [set('x2', (u) => mul(v('x')(u), v('x')(u))), set('z', (u) => mul(v('x')(u), add(splat(GELU_TANH_C1), mul(splat(GELU_TANH_C3), v('x2')(u)))))];

/** Each function's steps: from $x (and $dy for a gradient) to $out. */
const BODIES: Record<ActivationKernelFn, { value: Step[]; grad: Step[] }> = {
  gelu_tanh: {
    // y = x σ(z); dx = dy (s + x s (1 − s) (C1 + 3 C3 x²)).
    value: [...geluZ, ...sigmoid, set('out', (u) => mul(v('x')(u), v('s')(u)))],
    grad: [
      ...geluZ,
      ...sigmoid,
      set('out', (u) => mul(v('dy')(u), add(v('s')(u), mul(mul(mul(v('x')(u), v('s')(u)), v('c')(u)), add(splat(GELU_TANH_C1), mul(splat(3 * GELU_TANH_C3), v('x2')(u))))))),
    ],
  },
  silu: {
    // y = x σ(x); dx = dy σ(x) (1 + x (1 − σ(x))).
    value: [set('z', v('x')), ...sigmoid, set('out', (u) => mul(v('x')(u), v('s')(u)))],
    grad: [set('z', v('x')), ...sigmoid, set('out', (u) => mul(mul(v('dy')(u), v('s')(u)), add(ONE, mul(v('x')(u), v('c')(u)))))],
  },
};

/**
 * One exported function over n float32 elements at byte offsets: `inputs` (x, or x and dy) → `$y`. {@link UNROLL}
 * vectors at a time, then single vectors, then the 1-3 elements left in one vector whose other lanes are zero.
 */
function func(name: string, inputs: string[], steps: Step[]): string {
  const at = (u: number) => `(i32.add (local.get $o) (i32.const ${16 * u}))`;
  const loadFull = (count: number) => interleave(inputs.map((i) => set(i, (u) => `(v128.load (i32.add (local.get $${i}p) ${at(u)}))`)), count);
  const store = (count: number) => Array.from({ length: count }, (_, u) => `(v128.store (i32.add (local.get $yp) ${at(u)}) (local.get $out_${u}))`).join('\n      ');
  const loadTail = inputs
    .map((i) => `(local.set $${i}_0 ${splat(0)})
      ${[0, 1, 2].map((l) => `(if (i32.gt_s (local.get $rem) (i32.const ${l})) (then (local.set $${i}_0 (f32x4.replace_lane ${l} (local.get $${i}_0) (f32.load offset=${4 * l} (i32.add (local.get $${i}p) (local.get $o)))))))`).join('\n      ')}`)
    .join('\n      ');
  const storeTail = [0, 1, 2].map((l) => `(if (i32.gt_s (local.get $rem) (i32.const ${l})) (then (f32.store offset=${4 * l} (i32.add (local.get $yp) (local.get $o)) (f32x4.extract_lane ${l} (local.get $out_0)))))`).join('\n      ');
  const locals = vectorLocals(LOCALS, UNROLL);
  return `(func (export "${name}") ${inputs.map((i) => `(param $${i}p i32)`).join(' ')} (param $yp i32) (param $count i32)
    (local $o i32) (local $end i32) (local $endU i32) (local $rem i32)
    ${locals}
    (local.set $end (i32.shl (i32.and (local.get $count) (i32.const -4)) (i32.const 2)))
    (local.set $endU (i32.shl (i32.and (local.get $count) (i32.const ${-4 * UNROLL})) (i32.const 2)))
    (local.set $rem (i32.and (local.get $count) (i32.const 3)))
    (local.set $o (i32.const 0))
    (block $doneU (loop $unrolled
      (br_if $doneU (i32.ge_u (local.get $o) (local.get $endU)))
      ${loadFull(UNROLL)}
      ${interleave(steps, UNROLL)}
      ${store(UNROLL)}
      (local.set $o (i32.add (local.get $o) (i32.const ${16 * UNROLL})))
      (br $unrolled)))
    (block $done (loop $vectors
      (br_if $done (i32.ge_u (local.get $o) (local.get $end)))
      ${loadFull(1)}
      ${interleave(steps, 1)}
      ${store(1)}
      (local.set $o (i32.add (local.get $o) (i32.const 16)))
      (br $vectors)))
    (if (local.get $rem) (then
      ${loadTail}
      ${interleave(steps, 1)}
      ${storeTail})))`;
}

/**
 * The module's text. Exports, for each fn of {@link ActivationKernelFn}: `<fn>(x, y, n)`, y = f(x), and
 * `<fn>_grad(x, dy, dx, n)`, dx = dy · f′(x); float32 arrays at byte offsets (the output may be an input).
 */
export function activationWat(shared: boolean): string {
  const fns = Object.entries(BODIES).flatMap(([fn, b]) => [func(fn, ['x'], b.value), func(`${fn}_grad`, ['x', 'dy'], b.grad)]);
  return `(module
  ${memoryImport(shared)}
  ${fns.join('\n  ')}
)`;
}
