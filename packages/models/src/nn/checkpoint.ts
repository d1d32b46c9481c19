/**
 * Gradient checkpointing (activation recomputation, Chen et al. 2016, arXiv:1604.06174), per
 * transformer block, as transformers' `gradient_checkpointing_enable()` does with
 * `torch.utils.checkpoint`: the forward pass keeps only each block's inputs; the backward pass runs
 * the block again, this time recording, and takes its gradients from that second run.
 *
 * tfjs keeps every intermediate an op needs for its gradient on the tape until the backward pass.
 * Here a block runs inside `tf.customGrad` (ops inside a custom gradient's forward are not recorded)
 * and inside `tf.tidy`, so only its output and the saved inputs outlive it; its gradient function
 * recomputes the block under `engine.gradients` with the incoming gradient `dy` and returns the
 * gradients of the inputs and of the block's trainable parameters (which are passed to the custom
 * op as inputs so that the outer tape routes their gradients to them).
 *
 * Dropout: the block's masks come from the seeded stream (`nn/rng.ts`). The stream's state before
 * the block is remembered and restored for the recomputation (then put back), so the recomputed
 * block draws the same masks, as torch's `preserve_rng_state=True`.
 *
 * Frozen bases: the gradient of the block's input is always computed, so a block whose own
 * parameters are all frozen still passes gradients to the blocks and embeddings before it (the
 * failure "element 0 of tensors does not require grad" that HF fixes with
 * `enable_input_require_grads` cannot happen).
 */
import * as tf from '@tensorflow/tfjs';
import { getRngState, setRngState } from './rng.js';
import type { Module } from './module.js';

/** What {@link checkpointBlock} runs: the differentiable inputs and the constants, in the given order. */
export type BlockFn = (inputs: tf.Tensor[], constants: (tf.Tensor | undefined)[]) => tf.Tensor;

/**
 * Runs `fn` (one block) with gradient checkpointing.
 * @param block - the block's module: its trainable parameters (LoRA, adapters, or all of them in
 *   full fine-tuning) get gradients.
 * @param inputs - tensors that may need gradients: the hidden states [B, T, C] first, then e.g. a
 *   prefix's past keys and values [B, H, P, D].
 * @param constants - tensors the block reads but never differentiates (the attention bias
 *   [B, 1, T, S], rotary cos/sin); saved with the inputs for the recomputation.
 * @returns the block's output (one tensor; the caller disposes it).
 */
export function checkpointBlock(block: Module, fn: BlockFn, inputs: tf.Tensor[], constants: (tf.Tensor | undefined)[] = []): tf.Tensor {
  const params = block.trainableParameters().map(([, v]) => v);
  const nIn = inputs.length;
  const rng = getRngState();
  const present = constants.map((c) => c !== undefined);
  const op = tf.customGrad((...args: unknown[]) => {
    const save = args[args.length - 1] as tf.GradSaveFunc;
    const xs = args.slice(0, nIn) as tf.Tensor[];
    const value = tf.tidy(() => fn(xs, constants));
    save([...xs, ...(constants.filter((c) => c !== undefined) as tf.Tensor[])]);
    const gradFunc = (dy: tf.Tensor, saved: tf.Tensor[]): tf.Tensor[] => {
      const savedIn = saved.slice(0, nIn);
      let k = nIn;
      const savedConst = present.map((p) => (p ? saved[k++] : undefined));
      // Replay the forward pass's random stream, then leave the stream where the backward pass found it.
      const now = getRngState();
      setRngState(rng);
      // A gradient computed inside the outer backward pass starts a tape of its own and, on
      // finishing, sets the engine's active tape to null; the outer pass still needs its tape
      // afterwards (to free what its nodes saved), so it is put back.
      const state = (tf.engine() as unknown as { state: { activeTape: unknown } }).state;
      const outerTape = state.activeTape;
      try {
        const { grads } = tf.engine().gradients(() => fn(savedIn, savedConst), [...savedIn, ...params], dy, true);
        return [...savedIn, ...params].map((x, i) => grads[i] ?? tf.zerosLike(x));
      } finally {
        state.activeTape = outerTape;
        setRngState(now);
      }
    };
    return { value, gradFunc };
  });
  return op(...inputs, ...params) as tf.Tensor;
}

/** A block's keys and values (`LayerKV` of model.ts, restated to keep nn/ free of model imports). */
interface KV {
  key: tf.Tensor;
  value: tf.Tensor;
}

/** What a stack's loop calls for one block: every block of the architectures has this shape. */
export type BlockCall<B, P extends KV> = (block: B, x: tf.Tensor3D, past: P | undefined, constants: (tf.Tensor | undefined)[]) => { output: tf.Tensor3D; present: P };

/**
 * Block `i` of a stack, checkpointed ({@link checkpointBlock}) when `blocks.gradientCheckpointing`
 * is on, the model is training and no cache is asked for (HF's `self.gradient_checkpointing and
 * self.training`, which also turns `use_cache` off); else a plain call. The architectures' loops
 * call this instead of `block.forward`, so that checkpointing lives here and not in each model.
 * @param constants - tensors `call` reads besides `x` and `past` (attention bias, rotary tables):
 *   passed to `call` rather than captured, because the recomputation runs after the forward pass
 *   has freed its own copies.
 * @returns the block's output [B, T, C], and its keys/values when not checkpointed; the block's other tensors are
 *   freed (those a gradient needs were saved by their ops).
 */
export function blockForward<B extends Module, P extends KV>(
  blocks: { at(i: number): B; gradientCheckpointing: boolean },
  i: number,
  x: tf.Tensor3D,
  past: P | undefined,
  constants: (tf.Tensor | undefined)[],
  useCache: boolean | undefined,
  call: BlockCall<B, P>,
): { output: tf.Tensor3D; present?: P } {
  const block = blocks.at(i);
  // In a tidy: while a gradient is recorded, tfjs frees a block's intermediates only when a scope ends, and what a
  // gradient needs is saved by its op anyway; without it every tensor of every block (e.g. an activation's output
  // that a frozen projection never reads again) lived until the backward pass ended.
  if (!blocks.gradientCheckpointing || !block.training || useCache) return tf.tidy(() => call(block, x, past, constants) as unknown as tf.TensorContainer) as unknown as { output: tf.Tensor3D; present: P };
  const inputs = past ? [x, past.key, past.value] : [x];
  const fn: BlockFn = (ins, consts) => call(block, ins[0] as tf.Tensor3D, past ? ({ ...past, key: ins[1], value: ins[2] } as P) : undefined, consts).output;
  return { output: checkpointBlock(block, fn, inputs, constants) as tf.Tensor3D };
}
