/**
 * The backend-neutral softmax cross-entropy kernels (contract and reference: kernels/reference/softmax-xent.ts):
 * `PeftkitSoftmaxXent`, logits [r, V] and int32 targets [r] → the softmax [r, V] and each row's negative
 * log-likelihood [r]; `PeftkitSoftmaxXentGrad`, the softmax, the targets and a per-row scale [r] → dLogits [r, V].
 * kernels/lm-head-cross-entropy.ts calls them where the backend has them (WASM) and composes tfjs ops elsewhere.
 *
 * Why kernels: composed, the forward was a softmax, two row maxima (logsumexp from the softmax) and a gather, the
 * backward a one-hot, a cast, a subtraction and a product, each a pass over [r, V]: 36 ms of GPT-2 small's LoRA step
 * on WASM at 127 × 50,257 (docs/benchmarks.md). Here each direction reads and writes [r, V] about twice.
 */
import * as tf from '@tensorflow/tfjs';

/** The kernels' names, shared by every backend's configs. */
export const PEFTKIT_SOFTMAX_XENT = 'PeftkitSoftmaxXent';
export const PEFTKIT_SOFTMAX_XENT_GRAD = 'PeftkitSoftmaxXentGrad';

/** Whether the current backend has both kernels. */
export function hasSoftmaxXentKernels(): boolean {
  return Boolean(tf.getKernel(PEFTKIT_SOFTMAX_XENT, tf.getBackend()) && tf.getKernel(PEFTKIT_SOFTMAX_XENT_GRAD, tf.getBackend()));
}

/**
 * Softmax and per-row negative log-likelihood by the backend's kernel (check {@link hasSoftmaxXentKernels} first).
 * Not differentiable by itself: the caller's custom gradient calls {@link softmaxXentGradKernel}.
 * @param logits - [r, V] float32
 * @param targets - [r] int32, each in [0, V) (rows to ignore carry any valid id; the caller masks them)
 * @returns probs [r, V] and nll [r] (nats), float32
 * @throws Error (the kernel's) when the shapes or dtypes do not match or a target is outside [0, V).
 */
export function softmaxXentKernel(logits: tf.Tensor2D, targets: tf.Tensor1D): { probs: tf.Tensor2D; nll: tf.Tensor1D } {
  const [probs, nll] = tf.engine().runKernel(PEFTKIT_SOFTMAX_XENT, { logits, targets } as unknown as tf.NamedTensorMap) as tf.Tensor[];
  return { probs: probs as tf.Tensor2D, nll: nll as tf.Tensor1D };
}

/**
 * dLogits = (probs − onehot(targets)) · scale by the backend's kernel.
 * @param probs - [r, V] float32, a softmax
 * @param targets - [r] int32 in [0, V)
 * @param scale - [r] float32: each row's upstream gradient (0 for an ignored row)
 * @returns [r, V] float32
 * @throws Error (the kernel's) when the shapes or dtypes do not match or a target is outside [0, V).
 */
export function softmaxXentGradKernel(probs: tf.Tensor2D, targets: tf.Tensor1D, scale: tf.Tensor1D): tf.Tensor2D {
  return tf.engine().runKernel(PEFTKIT_SOFTMAX_XENT_GRAD, { probs, targets, scale } as unknown as tf.NamedTensorMap) as tf.Tensor2D;
}
