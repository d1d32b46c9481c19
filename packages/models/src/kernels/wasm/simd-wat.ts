/**
 * What peftkit's elementwise WebAssembly kernels share: a small way of writing vector code for several vectors at
 * once (steps over per-vector locals, interleaved so that independent chains of operations overlap), and e^t for
 * t ≤ 0 from Cephes' `expf` (Moshier, Cephes Math Library, expf.c): n = round(t log₂e), r = t − n ln 2 in two parts,
 * e^r by its degree-7 polynomial, times 2^n built in the exponent bits by the magic-bias trick (as XNNPACK's kernels
 * do), with no float-to-integer conversion. Cephes gives its relative error as about 1e−7. Multiplies and adds are
 * separate (no fused multiply-add), so the results are the same on every engine.
 */

/** A step of vector code for vector u: WAT text using that vector's locals (`$name_u`). */
export type Step = (u: number) => string;

/** A constant vector of four float32 lanes (WAT spells infinities `inf`). */
export const splat = (c: number) => {
  const t = c === Infinity ? 'inf' : c === -Infinity ? '-inf' : String(c);
  return `(v128.const f32x4 ${t} ${t} ${t} ${t})`;
};
export const ONE = splat(1);
export const mul = (a: string, b: string) => `(f32x4.mul ${a} ${b})`;
export const add = (a: string, b: string) => `(f32x4.add ${a} ${b})`;
export const sub = (a: string, b: string) => `(f32x4.sub ${a} ${b})`;
/** Vector u's local `name`. */
export const v = (name: string) => (u: number) => `(local.get $${name}_${u})`;
/** Sets vector u's local `name`. */
export const set = (name: string, expr: (u: number) => string): Step => (u) => `(local.set $${name}_${u} ${expr(u)})`;

/** The steps for vectors 0..count−1, step by step (vector 0's step, vector 1's, ...), so that they overlap. */
export const interleave = (steps: Step[], count: number) => steps.map((step) => Array.from({ length: count }, (_, u) => step(u)).join('\n      ')).join('\n      ');

/**
 * A pass over an array: `vec` for each whole vector of 4 floats (byte offset $o), then `scalar` for each remaining
 * element (offset $o). `endV` and `end` are i32 locals holding the bytes of the whole vectors and of all elements;
 * `id` keeps the loops' labels apart within a function. Uses $o.
 */
export const vectorsThenElements = (id: string, vec: string, scalar: string, endV = '$endV', end = '$end') => `(local.set $o (i32.const 0))
      (block $v${id}done (loop $v${id}
        (br_if $v${id}done (i32.ge_u (local.get $o) (local.get ${endV})))
        ${vec}
        (local.set $o (i32.add (local.get $o) (i32.const 16)))
        (br $v${id})))
      (block $s${id}done (loop $s${id}
        (br_if $s${id}done (i32.ge_u (local.get $o) (local.get ${end})))
        ${scalar}
        (local.set $o (i32.add (local.get $o) (i32.const 4)))
        (br $s${id})))`;

/** Declarations of v128 locals `name_u` for every name and u < count. */
export const vectorLocals = (names: string[], count: number) => Array.from({ length: count }, (_, u) => names.map((l) => `(local $${l}_${u} v128)`).join(' ')).join('\n    ');

/** Cephes expf's polynomial for e^r − 1 − r over r², highest power first. */
const EXP_POLY = [1.98756915e-4, 1.3981999507e-3, 8.3334519073e-3, 4.1665795894e-2, 1.6666665459e-1, 5.0000001201e-1];
/** 1.5 · 2^23 + 127: added to t log₂e, it rounds to an integer n and leaves n + 127 in the low mantissa bits. */
const MAGIC = 12582912 + 127;
/** The most negative t {@link expSteps} takes: 2^n stays a normal float32 (e^−87 ≈ 1.6e−38). */
export const EXP_MIN = -87;

/** The locals {@link expSteps} uses besides its input and output. */
export const EXP_LOCALS = ['n', 'r', 'q'];

/**
 * Steps setting `$out` = e^t from `$t`, for t in [{@link EXP_MIN}, 0] (the caller clamps: pmax with EXP_MIN).
 * NaN stays NaN.
 */
export function expSteps(t: string, out: string): Step[] {
  return [
    set('n', (u) => add(mul(v(t)(u), splat(Math.LOG2E)), splat(MAGIC))),
    set('q', (u) => `(i32x4.shl ${v('n')(u)} (i32.const 23))`), // 2^n
    set('n', (u) => sub(v('n')(u), splat(MAGIC))),
    set('r', (u) => sub(sub(v(t)(u), mul(v('n')(u), splat(0.693359375))), mul(v('n')(u), splat(-2.12194440e-4)))),
    set(out, () => splat(EXP_POLY[0])),
    ...EXP_POLY.slice(1).map((c) => set(out, (u) => add(mul(v(out)(u), v('r')(u)), splat(c)))),
    set(out, (u) => mul(add(add(mul(v(out)(u), mul(v('r')(u), v('r')(u))), v('r')(u)), ONE), v('q')(u))),
  ];
}
