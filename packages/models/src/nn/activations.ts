/**
 * HF's activation functions (transformers/activations.py `ACT2FN`) as memory-lean ops.
 *
 * tfjs keeps every tensor created inside `tf.variableGrads` until the gradient is computed, needed or not
 * (PyTorch frees what autograd does not save): composed of tfjs ops, GPT-2's gelu_new kept about seven
 * [B, T, 4C] tensors a layer for the backward pass. Here each activation is one `tf.customGrad` op: its forward
 * runs in the op's own tidy (its intermediates die at once) and saves only its input x; the backward recomputes
 * what it needs from x. Gradients equal autodiff's up to float32 rounding (nn/lean-ops.test.ts).
 *
 * GELU's tanh form and SiLU run as one kernel each way where the backend has `PeftkitActivation` (WASM;
 * kernels/activation.ts), within about 1e−7 of the composed ops' values; elsewhere the composed ops.
 */
import * as tf from '@tensorflow/tfjs';
import { activationGradKernel, activationKernel, hasActivationKernels, type ActivationKernelFn } from '../kernels/activation.js';
import { GELU_TANH_C1, GELU_TANH_C3 } from '../kernels/reference/activation.js';

/** 1 / √(2π), the standard normal density's factor. */
const INV_SQRT_2PI = 1 / Math.sqrt(2 * Math.PI);

/** An elementwise activation: its value and its derivative at x (same shape as x), and its kernel if it has one. */
interface Elementwise {
  value: (x: tf.Tensor) => tf.Tensor;
  derivative: (x: tf.Tensor) => tf.Tensor;
  kernel?: ActivationKernelFn;
}

// Each value is the composed form the models used before (same ops, same bits).
const GELU_ERF: Elementwise = {
  // 0.5 x (1 + erf(x / √2)) (Hendrycks and Gimpel 2016).
  value: (x) => tf.mul(tf.mul(x, 0.5), tf.add(1, tf.erf(tf.mul(x, Math.SQRT1_2)))),
  // Φ(x) + x φ(x), φ(x) = exp(−x²/2) / √(2π).
  derivative: (x) => tf.add(tf.mul(tf.add(1, tf.erf(tf.mul(x, Math.SQRT1_2))), 0.5), tf.mul(x, tf.mul(tf.exp(tf.mul(tf.mul(x, x), -0.5)), INV_SQRT_2PI))),
};

// Computed as x·σ(2u), u = √(2/π)(x + 0.044715 x³), which equals 0.5 x (1 + tanh(u)) since
// 0.5 (1 + tanh(u)) = σ(2u): on WASM, Sigmoid is XNNPACK's vectorized kernel while Tanh is a
// scalar loop, and this form has fewer kernels, so forward and backward ran 5 times faster.
// x·x, not tf.pow: pow and its gradient ran 8 times slower on WASM (docs/benchmarks.md).
const GELU_TANH: Elementwise = {
  kernel: 'gelu_tanh',
  value: (x) => tf.mul(x, tf.sigmoid(tf.mul(x, tf.add(GELU_TANH_C1, tf.mul(GELU_TANH_C3, tf.mul(x, x)))))),
  // d/dx x σ(z) = σ(z) + x σ(z) (1 − σ(z)) z′, z = x (C1 + C3 x²), z′ = C1 + 3 C3 x².
  derivative: (x) => {
    const x2 = tf.mul(x, x);
    const s = tf.sigmoid(tf.mul(x, tf.add(GELU_TANH_C1, tf.mul(GELU_TANH_C3, x2))));
    return tf.add(s, tf.mul(tf.mul(tf.mul(x, s), tf.sub(1, s)), tf.add(GELU_TANH_C1, tf.mul(3 * GELU_TANH_C3, x2))));
  },
};

const SILU: Elementwise = {
  kernel: 'silu',
  value: (x) => tf.mul(x, tf.sigmoid(x)),
  // σ(x) (1 + x (1 − σ(x))).
  derivative: (x) => {
    const s = tf.sigmoid(x);
    return tf.mul(s, tf.add(1, tf.mul(x, tf.sub(1, s))));
  },
};

/** The activations written as saving-only-x ops, by HF name. */
const LEAN: Record<string, Elementwise> = {
  gelu: GELU_ERF,
  gelu_new: GELU_TANH,
  gelu_pytorch_tanh: GELU_TANH,
  gelu_fast: GELU_TANH,
  silu: SILU,
  swish: SILU,
};

/** The names {@link activation} knows. */
export const ACTIVATION_NAMES = ['gelu', 'gelu_new', 'gelu_pytorch_tanh', 'gelu_fast', 'relu', 'silu', 'swish', 'tanh'] as const;

/** f(x): the backend's kernel where there is one, else the composed ops. */
function valueOf(f: Elementwise, x: tf.Tensor): tf.Tensor {
  return f.kernel && hasActivationKernels() ? activationKernel(f.kernel, x) : f.value(x);
}

/** dy · f′(x): the backend's kernel where there is one, else the composed ops. */
function gradientOf(f: Elementwise, x: tf.Tensor, dy: tf.Tensor): tf.Tensor {
  return f.kernel && hasActivationKernels() ? activationGradKernel(f.kernel, x, dy) : tf.mul(dy, f.derivative(x));
}

/** `f` as one op that saves only its input and recomputes f′(x) in the backward pass. */
function leanOp(f: Elementwise): (x: tf.Tensor) => tf.Tensor {
  const op = tf.customGrad(((x: tf.Tensor, save: tf.GradSaveFunc) => {
    save([x]);
    return {
      value: valueOf(f, x),
      gradFunc: (dy: tf.Tensor, [sx]: tf.Tensor[]) => tf.tidy(() => gradientOf(f, sx!, dy)),
    };
    // tfjs types the callback as variadic over tensors and the save function.
  }) as unknown as Parameters<typeof tf.customGrad>[0]) as (x: tf.Tensor) => tf.Tensor;
  // Outside a gradient the plain ops cost the same and skip the saved clone.
  return (x) => (tf.engine().isTapeOn() ? op(x) : tf.tidy(() => valueOf(f, x)));
}

/**
 * HF's `ACT2FN` (transformers/activations.py) for the names configs use.
 * `gelu` is the exact erf form; `gelu_new`, `gelu_pytorch_tanh` and `gelu_fast` are the tanh
 * approximation 0.5 x (1 + tanh(√(2/π) (x + 0.044715 x³))) (Hendrycks and Gimpel 2016, section 2);
 * `silu` / `swish` is x σ(x). The GELUs and SiLU keep only their input for the backward pass (see the
 * file comment); relu and tanh are single tfjs ops already.
 * Shapes: any → the same.
 * @throws Error for a name not listed.
 */
export function activation(name: string): (x: tf.Tensor) => tf.Tensor {
  const lean = LEAN[name];
  if (lean) return leanOp(lean);
  switch (name) {
    case 'relu':
      return (x) => tf.relu(x);
    case 'tanh':
      return (x) => tf.tanh(x);
    default:
      throw new Error(`unsupported activation "${name}"; supported: ${ACTIVATION_NAMES.join(', ')}`);
  }
}

/**
 * `act(gate) * up` (the gated MLPs: Llama's SwiGLU `act_fn(gate_proj(x)) * up_proj(x)`, modeling_llama.py
 * `LlamaMLP`) as one op that saves only gate and up: composed, act(gate) and its intermediates were kept
 * besides them. Backward: d up = dy · act(gate), d gate = dy · up · act′(gate).
 * @param name - an {@link activation} name
 * @returns a function of gate and up, both [..., I] (same shape) → [..., I]
 * @throws Error for a name {@link activation} does not know.
 */
export function gatedActivation(name: string): (gate: tf.Tensor, up: tf.Tensor) => tf.Tensor {
  const lean = LEAN[name];
  if (!lean) {
    const act = activation(name);
    return (gate, up) => tf.tidy(() => tf.mul(act(gate), up));
  }
  const op = tf.customGrad(((gate: tf.Tensor, up: tf.Tensor, save: tf.GradSaveFunc) => {
    save([gate, up]);
    return {
      value: tf.mul(valueOf(lean, gate), up),
      gradFunc: (dy: tf.Tensor, [sg, su]: tf.Tensor[]) => tf.tidy(() => [gradientOf(lean, sg!, tf.mul(dy, su!)), tf.mul(dy, valueOf(lean, sg!))]),
    };
    // tfjs types the callback as variadic over tensors and the save function.
  }) as unknown as Parameters<typeof tf.customGrad>[0]) as (gate: tf.Tensor, up: tf.Tensor) => tf.Tensor;
  return (gate, up) => (tf.engine().isTapeOn() ? op(gate, up) : tf.tidy(() => tf.mul(valueOf(lean, gate), up)));
}
