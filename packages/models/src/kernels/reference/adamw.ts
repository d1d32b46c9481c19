/**
 * One AdamW update of a parameter in plain TypeScript, in float32 arithmetic (each operation rounded with
 * Math.fround, in the order of the composed tfjs ops of @peftkit/steps' AdamW): the reference of the `PeftkitAdamW`
 * kernel (kernels/adamw.ts), which must give the same bits. torch.optim.AdamW's arithmetic for update t
 * (Loshchilov and Hutter 2019, Algorithm 2):
 *
 *     m ← β1·m + (1 − β1)·g,   v ← β2·v + (1 − β2)·g²
 *     p ← p·(1 − lr·λ) − (m / (√v / √(1 − β2ᵗ) + ε)) · lr / (1 − β1ᵗ)
 */

/** The update's scalars, as float32 (the kernel's attrs). */
export interface AdamWScalars {
  beta1: number;
  beta2: number;
  epsilon: number;
  /** 1 − lr·λ (1 without decay). */
  decay: number;
  /** √(1 − β2ᵗ). */
  bc2Sqrt: number;
  /** lr / (1 − β1ᵗ). */
  stepSize: number;
}

/** New p, m and v (float32 values) from p, g, m and v. */
export function adamWReference(p: ArrayLike<number>, g: ArrayLike<number>, m: ArrayLike<number>, v: ArrayLike<number>, s: AdamWScalars): { p: Float32Array; m: Float32Array; v: Float32Array } {
  const f = Math.fround;
  const [b1, nb1, b2, nb2, eps, decay, bc2, step] = [s.beta1, 1 - s.beta1, s.beta2, 1 - s.beta2, s.epsilon, s.decay, s.bc2Sqrt, s.stepSize].map(f);
  const n = p.length;
  const out = { p: new Float32Array(n), m: new Float32Array(n), v: new Float32Array(n) };
  for (let i = 0; i < n; i++) {
    const m1 = f(f(m[i] * b1) + f(g[i] * nb1));
    const v1 = f(f(v[i] * b2) + f(f(g[i] * g[i]) * nb2));
    const denom = f(f(f(Math.sqrt(v1)) / bc2) + eps);
    out.p[i] = f(f(p[i] * decay) - f(f(m1 / denom) * step));
    out.m[i] = m1;
    out.v[i] = v1;
  }
  return out;
}
