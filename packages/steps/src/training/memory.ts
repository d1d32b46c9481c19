import * as tf from '@tensorflow/tfjs';
import { isWasmHeapError, UserError } from '@peftkit/core';

/** Memory in use, in bytes. */
export interface MemoryUse {
  /** Bytes held by live tensors (`tf.memory().numBytes`). */
  tensorBytes: number;
  /** WASM backend only: the size of its heap, which grows to the peak and never shrinks (4 GiB at most). */
  heapBytes?: number;
}

/** The WASM heap's hard limit: 32-bit addressing. */
const WASM_HEAP_LIMIT_MB = 4096;

/** What is in use now. */
export function memoryInUse(): MemoryUse {
  const tensorBytes = tf.memory().numBytes;
  const heap = (tf.backend() as { wasm?: { HEAPU8?: Uint8Array } }).wasm?.HEAPU8?.length;
  return heap ? { tensorBytes, heapBytes: heap } : { tensorBytes };
}

/**
 * The guard's limit when `max_memory_mb` is not set: on WASM, 7/8 of its 4 GiB heap (running out of
 * it can make the threaded build spin instead of failing); elsewhere none.
 */
export function defaultMemoryLimitMb(backend: string): number | null {
  return backend === 'wasm' ? (WASM_HEAP_LIMIT_MB * 7) / 8 : null;
}

/** What to lower when a step does not fit, shared by the guard and the heap-exhausted error. */
const LOWER_HINT = 'lower per_device_train_batch_size (and raise gradient_accumulation_steps to keep the effective batch), lower the dataset\'s max_length, or raise max_memory_mb if the machine has the memory';

/**
 * The error to throw when a training step ran out of the WASM heap (4 GiB) mid-step, where the
 * between-steps guard ({@link checkMemory}) cannot see it; undefined when `e` is another error.
 * @returns UserError naming the step, the heap and what to lower.
 */
export function heapExhaustedError(e: unknown, step: number): UserError | undefined {
  if (!isWasmHeapError(e)) return undefined;
  const why = e instanceof Error ? e.message.split('\n')[0] : String(e);
  return new UserError(`step ${step} does not fit in the WASM heap (4 GiB, the backend's limit): ${why}`, {
    hint: `${LOWER_HINT}; what a step keeps for its backward pass grows with batch x sequence length`,
  });
}

/**
 * Stops training with a clear message when the memory in use (the larger of live tensor bytes and,
 * on WASM, the heap size) exceeds `limitMb` mebibytes, rather than letting the backend run out.
 * @throws UserError naming the step, the usage and what to lower.
 */
export function checkMemory(limitMb: number | null, step: number): void {
  if (limitMb == null || !(limitMb > 0)) return;
  const use = memoryInUse();
  const usedMb = Math.max(use.tensorBytes, use.heapBytes ?? 0) / 2 ** 20;
  if (usedMb <= limitMb) return;
  const detail = `${(use.tensorBytes / 2 ** 20).toFixed(0)} MiB in tensors${use.heapBytes ? `, WASM heap ${(use.heapBytes / 2 ** 20).toFixed(0)} MiB` : ''}`;
  throw new UserError(`memory in use (${detail}) exceeds max_memory_mb = ${limitMb} at step ${step}; training stopped before the backend runs out`, {
    hint: LOWER_HINT,
  });
}
