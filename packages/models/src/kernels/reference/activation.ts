/**
 * The activations that have kernels of their own (`PeftkitActivation`, `PeftkitActivationGrad`; kernels/activation.ts),
 * in plain TypeScript over float64: the reference those kernels are tested against.
 *
 * - `gelu_tanh`: GELU's tanh approximation 0.5 x (1 + tanh(√(2/π) (x + 0.044715 x³))) (Hendrycks and Gimpel 2016,
 *   section 2; HF's `gelu_new`, `gelu_pytorch_tanh`, `gelu_fast`), computed as x σ(z), z = x (C1 + C3 x²), since
 *   0.5 (1 + tanh(u)) = σ(2u). Derivative σ(z) + x σ(z) (1 − σ(z)) (C1 + 3 C3 x²).
 * - `silu`: x σ(x) (Elfwing et al. 2018; HF's `silu`, `swish`). Derivative σ(x) (1 + x (1 − σ(x))).
 */

/** The activations with kernels. */
export type ActivationKernelFn = 'gelu_tanh' | 'silu';

/** 2u = x (C1 + C3 x²) for the tanh approximation's u = √(2/π) (x + 0.044715 x³). */
export const GELU_TANH_C1 = 2 * Math.sqrt(2 / Math.PI);
export const GELU_TANH_C3 = 2 * 0.044715 * Math.sqrt(2 / Math.PI);

const sigmoid = (z: number) => 1 / (1 + Math.exp(-z));

/** f(x), element by element. */
export function activationReference(fn: ActivationKernelFn, x: ArrayLike<number>): Float64Array {
  return Float64Array.from(x, (v) => (fn === 'silu' ? v * sigmoid(v) : v * sigmoid(v * (GELU_TANH_C1 + GELU_TANH_C3 * v * v))));
}

/** dy · f′(x), element by element (x and dy the same length). */
export function activationGradReference(fn: ActivationKernelFn, x: ArrayLike<number>, dy: ArrayLike<number>): Float64Array {
  return Float64Array.from(x, (v, i) => {
    if (fn === 'silu') {
      const s = sigmoid(v);
      return dy[i] * s * (1 + v * (1 - s));
    }
    const s = sigmoid(v * (GELU_TANH_C1 + GELU_TANH_C3 * v * v));
    return dy[i] * (s + v * s * (1 - s) * (GELU_TANH_C1 + 3 * GELU_TANH_C3 * v * v));
  });
}
