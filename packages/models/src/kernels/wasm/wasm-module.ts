/**
 * What peftkit's own WebAssembly kernels (gemm.ts, dropout.ts, activation.ts, ...) share: wabt to assemble their text,
 * the part of the WebAssembly JS API they use, the memory of tfjs-backend-wasm's module, which they import so that
 * they work on tensors in place, and one module per backend (`kernelModule`).
 */
import wabtInit from 'wabt';

// wabt (WebAssembly's own toolkit, compiled to WASM) assembles the text once per process; loading it takes ~25 ms.
const wabt = await wabtInit();

/** The part of the WebAssembly JS API used here (the project's lib settings have no DOM types, which declare it). */
interface WebAssemblyApi {
  Module: new (bytes: Uint8Array) => WasmModule;
  Instance: new (module: WasmModule, imports: object) => { exports: Record<string, unknown> };
  Memory: new (descriptor: { initial: number; maximum?: number; shared?: boolean }) => WasmMemory;
}
/** A compiled module (opaque here). */
export type WasmModule = object & { readonly __wasmModule?: never };
/** A module's memory. */
export interface WasmMemory {
  readonly buffer: ArrayBuffer | SharedArrayBuffer;
}
/** The global `WebAssembly`, typed. */
export const WA = (globalThis as unknown as { WebAssembly: WebAssemblyApi }).WebAssembly;

/**
 * Assembles WebAssembly text with wabt.
 * @param name - the text's name in wabt's messages
 * @param features - proposals beyond the MVP the text uses (`simd`, `threads` for a shared memory, `relaxed_simd`)
 * @throws Error (wabt's) when the text does not assemble: a bug in the kernel's text.
 */
export function assembleWat(name: string, text: string, features: { simd?: boolean; threads?: boolean; relaxed_simd?: boolean }): Uint8Array {
  const parsed = wabt.parseWat(name, text, features);
  try {
    return parsed.toBinary({}).buffer;
  } finally {
    parsed.destroy();
  }
}

/** The Emscripten module of tfjs-backend-wasm, as far as peftkit's kernels use it. */
export interface EmscriptenModule {
  _malloc(bytes: number): number;
  /** The threaded build's memory. */
  wasmMemory?: WasmMemory;
  /** The single-threaded build's exports, its memory among them. */
  asm?: { memory?: WasmMemory };
}

/**
 * The WASM backend's Emscripten module and memory, and whether the memory is shared (the threaded build); undefined
 * when `backend` is not tfjs-backend-wasm's or its memory cannot be found (another version of the package).
 */
export function backendMemory(backend: unknown): { module: EmscriptenModule; memory: WasmMemory; shared: boolean } | undefined {
  const module = (backend as { wasm?: EmscriptenModule }).wasm;
  const memory = module?.wasmMemory ?? module?.asm?.memory;
  if (!module || !(memory instanceof (WA.Memory as unknown as new () => object))) return undefined;
  return { module, memory, shared: typeof SharedArrayBuffer !== 'undefined' && memory.buffer instanceof SharedArrayBuffer };
}

/** The memory import a kernel's text declares for a backend's memory (a shared one must state its maximum). */
export function memoryImport(shared: boolean): string {
  return `(import "env" "memory" (memory 1${shared ? ' 65536 shared' : ''}))`;
}

/**
 * A kernel module for the WASM backend's memory: `text(shared)` assembled (SIMD; threads where the memory is shared)
 * and instantiated once per backend with the backend's memory as its import.
 * @param name - the text's name in wabt's messages
 * @returns a function of the backend that gives the module's exports, or null where the backend's memory is not
 *   found (the kernels then take their fallbacks)
 */
export function kernelModule<E>(name: string, text: (shared: boolean) => string): (backend: unknown) => E | null {
  const bound = new WeakMap<object, E>();
  return (backend) => {
    const found = backendMemory(backend);
    if (!found) return null;
    let ex = bound.get(found.module);
    if (!ex) {
      const bin = assembleWat(name, text(found.shared), { simd: true, threads: found.shared });
      ex = new WA.Instance(new WA.Module(bin), { env: { memory: found.memory } }).exports as E;
      bound.set(found.module, ex);
    }
    return ex;
  };
}
