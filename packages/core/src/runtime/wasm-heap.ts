/**
 * Running out of the WASM heap, said clearly. tfjs-backend-wasm allocates every tensor with the
 * module's `_malloc`; when the heap cannot grow (4 GiB, 32-bit addressing) `_malloc` returns 0 and
 * the backend writes through that null pointer, which surfaces later as "RuntimeError: memory
 * access out of bounds" (or, with the threaded build, as a process that spins). {@link guardWasmHeap}
 * makes the failed allocation itself throw {@link WasmHeapExhausted}, naming the heap and the size.
 */
import * as tf from '@tensorflow/tfjs';

/** The WASM heap's hard limit in bytes: 32-bit addressing (Emscripten's `getHeapMax`, 4 GiB - 64 KiB). */
export const WASM_HEAP_MAX_BYTES = 4294901760;

/** Thrown when an allocation on the WASM heap fails. */
export class WasmHeapExhausted extends Error {
  constructor(readonly requestedBytes: number, readonly heapBytes: number) {
    super(`the WASM heap is full: allocating ${(requestedBytes / 2 ** 20).toFixed(1)} MiB failed with the heap at ${(heapBytes / 2 ** 20).toFixed(0)} MiB of its ${(WASM_HEAP_MAX_BYTES / 2 ** 20).toFixed(0)} MiB limit`);
    this.name = 'WasmHeapExhausted';
  }
}

/** The part of the Emscripten module the guard wraps. */
interface WasmModule {
  _malloc(bytes: number): number;
  _free(ptr: number): void;
  HEAPU8?: Uint8Array;
  wasmMemory?: { buffer: ArrayBufferLike };
  peftkitHeapGuard?: boolean;
}

/** The heap size now in bytes, or undefined when the backend is not WASM. */
export function wasmHeapBytes(): number | undefined {
  const m = (tf.backend() as { wasm?: WasmModule }).wasm;
  return m ? (m.wasmMemory?.buffer.byteLength ?? m.HEAPU8?.length) : undefined;
}

/**
 * Wraps the current WASM backend's `_malloc` so that a failed allocation throws
 * {@link WasmHeapExhausted} instead of returning a null pointer. Idempotent; a no-op on other
 * backends.
 */
export function guardWasmHeap(): void {
  const m = (tf.backend() as { wasm?: WasmModule }).wasm;
  if (!m || m.peftkitHeapGuard) return;
  // Emscripten's `_malloc` is a stub that replaces itself with the raw export on its first call;
  // call it once so that the wrapper is not overwritten.
  m._free(m._malloc(16));
  const malloc = m._malloc.bind(m);
  m._malloc = (bytes: number) => {
    // Past 4 GiB the size would wrap around in malloc's 32-bit argument and "succeed" small.
    if (bytes > WASM_HEAP_MAX_BYTES) throw new WasmHeapExhausted(bytes, wasmHeapBytes() ?? 0);
    const p = malloc(bytes);
    if (p === 0 && bytes > 0) throw new WasmHeapExhausted(bytes, wasmHeapBytes() ?? 0);
    return p;
  };
  m.peftkitHeapGuard = true;
}

/**
 * Whether `e` is the WASM heap running out: {@link WasmHeapExhausted}, or the errors an exhausted
 * heap shows when an allocation escaped the guard (inside a kernel).
 */
export function isWasmHeapError(e: unknown): boolean {
  if (e instanceof WasmHeapExhausted) return true;
  const msg = e instanceof Error ? e.message : String(e);
  return /memory access out of bounds|Out of memory|Cannot enlarge memory|Aborted\(OOM\)/.test(msg);
}
