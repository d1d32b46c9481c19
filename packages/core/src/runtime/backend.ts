import * as tf from '@tensorflow/tfjs';
import { startWasm } from './wasm-threads.js';
import { guardWasmHeap } from './wasm-heap.js';

/** The backend choices of a pipeline's `backend` field. */
export type BackendChoice = 'auto' | 'tensorflow-gpu' | 'tensorflow' | 'wasm' | 'cpu';

/** What {@link initBackend} chose. */
export interface BackendInfo {
  /** The tfjs backend name in use: `tensorflow` (tfjs-node or tfjs-node-gpu), `wasm` or `cpu`. */
  name: string;
  /** Where it came from, e.g. `@tensorflow/tfjs-backend-wasm 4.22.0 (SIMD)`. */
  detail: string;
  tfjsVersion: string;
  /** Choices tried before this one and why each failed. */
  skipped: string[];
  /** WASM only: threads in XNNPACK's pool (set with `PEFTKIT_WASM_THREADS`; 1 = single-threaded). */
  threads?: number;
}

const ORDER: Exclude<BackendChoice, 'auto'>[] = ['tensorflow-gpu', 'tensorflow', 'wasm', 'cpu'];

/** Hook for backend-specific kernels (e.g. ones the WASM backend lacks); run after a backend is set. */
const kernelInstallers: ((backend: string) => void)[] = [];

/** Registers a function called with the backend name once a backend is chosen (and right away if one is). */
export function onBackendReady(install: (backend: string) => void): void {
  kernelInstallers.push(install);
  if (current) install(current.name);
}

let current: BackendInfo | undefined;

/** The backend chosen by the last {@link initBackend}, if any. */
export function currentBackend(): BackendInfo | undefined {
  return current;
}

/**
 * Chooses and initialises the TensorFlow.js backend. `auto` tries, in order, @tensorflow/tfjs-node-gpu
 * and @tensorflow/tfjs-node (optional peer dependencies, imported only if installed), the WASM
 * backend, then the plain CPU backend. An explicit choice that cannot start is an error.
 * @throws Error naming the package to install when an explicit choice is unavailable.
 */
export async function initBackend(choice: BackendChoice = 'auto'): Promise<BackendInfo> {
  const candidates = choice === 'auto' ? ORDER : [choice];
  const skipped: string[] = [];
  for (const c of candidates) {
    try {
      const { detail, threads } = await start(c);
      current = { name: tf.getBackend(), detail, tfjsVersion: tf.version.tfjs, skipped, ...(threads !== undefined ? { threads } : {}) };
      for (const k of kernelInstallers) k(current.name);
      return current;
    } catch (e) {
      skipped.push(`${c}: ${(e as Error).message.split('\n')[0]}`);
    }
  }
  throw new Error(`backend "${choice}" is not available: ${skipped.join('; ')}. Install @tensorflow/tfjs-node(-gpu) for the native backends, or use "backend": "wasm".`);
}

async function start(c: Exclude<BackendChoice, 'auto'>): Promise<{ detail: string; threads?: number }> {
  switch (c) {
    case 'tensorflow-gpu':
    case 'tensorflow': {
      const pkg = c === 'tensorflow-gpu' ? '@tensorflow/tfjs-node-gpu' : '@tensorflow/tfjs-node';
      // A variable keeps bundlers and tsc from resolving the optional peer at build time.
      const mod = await import(/* @vite-ignore */ pkg as string).catch(() => {
        throw new Error(`${pkg} is not installed`);
      });
      if (!(await tf.setBackend('tensorflow'))) throw new Error(`${pkg} loaded but its backend did not start`);
      return { detail: `${pkg} ${mod.version?.['tfjs-node'] ?? ''}`.trim() };
    }
    case 'wasm': {
      const { threads, fallback } = await startWasm();
      await tf.ready();
      guardWasmHeap();
      const simd = await tf.env().getAsync('WASM_HAS_SIMD_SUPPORT');
      const how = [simd ? 'SIMD' : '', `${threads} thread${threads === 1 ? '' : 's'}`, fallback ? `threads off: ${fallback}` : ''].filter(Boolean).join(', ');
      return { detail: `@tensorflow/tfjs-backend-wasm ${tf.version.tfjs} (${how})`, threads };
    }
    case 'cpu':
      if (!(await tf.setBackend('cpu'))) throw new Error('the CPU backend did not start');
      return { detail: `@tensorflow/tfjs-backend-cpu ${tf.version.tfjs}` };
  }
}
