import * as tf from '@tensorflow/tfjs';
import { startWebGpu, type GpuAdapterInfo } from './backends/webgpu.js';
import { startWasm } from './wasm-threads.js';
import { guardWasmHeap } from './wasm-heap.js';

export { webgpuUnavailable, type GpuAdapterInfo } from './backends/webgpu.js';

/** The backend choices of a pipeline's `backend` field. */
export type BackendChoice = 'auto' | 'tensorflow-gpu' | 'webgpu' | 'tensorflow' | 'wasm' | 'cpu';

/** What {@link initBackend} chose. */
export interface BackendInfo {
  /** The tfjs backend name in use: `tensorflow` (tfjs-node or tfjs-node-gpu), `webgpu`, `wasm` or `cpu`. */
  name: string;
  /** Where it came from, e.g. `@tensorflow/tfjs-backend-wasm 4.22.0 (SIMD)`. */
  detail: string;
  tfjsVersion: string;
  /** Choices tried before this one and why each failed. */
  skipped: string[];
  /** The GPU adapter (vendor, device, driver) when the backend is `webgpu`. */
  adapter?: GpuAdapterInfo;
  /**
   * WASM only: compute threads (set with `PEFTKIT_WASM_THREADS`; 1 = single-threaded). Kernels with workers of their
   * own (peftkit's GEMM) run this many.
   */
  threads?: number;
  /** WASM only: threads in XNNPACK's pool, which runs the backend's own kernels: `threads`, or 1 where a package claimed them (`claimWasmThreads`). */
  poolThreads?: number;
}

/** `auto`'s order: the native GPU build, a real GPU through WebGPU, the native CPU build, WASM, plain JavaScript. */
const ORDER: Exclude<BackendChoice, 'auto'>[] = ['tensorflow-gpu', 'webgpu', 'tensorflow', 'wasm', 'cpu'];

/** Hook for backend-specific kernels (e.g. ones the WASM backend lacks); run after a backend is set. */
const kernelInstallers: ((backend: string) => string | void)[] = [];

/**
 * Registers a function called with the backend name once a backend is chosen (and right away if one is). What it
 * returns, if anything, is a note on what it installed, added to the chosen backend's `detail` (the run log's
 * backend line), e.g. which kernel runs the products.
 */
export function onBackendReady(install: (backend: string) => string | void): void {
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
 * (optional peer, imported only if installed), WebGPU on a real GPU adapter (optional dependencies
 * @tensorflow/tfjs-backend-webgpu and `webgpu`; a software adapter such as llvmpipe is never picked
 * by `auto`), @tensorflow/tfjs-node (optional peer), the WASM backend, then the plain CPU backend.
 * An explicit `webgpu` also accepts llvmpipe (Dawn's OpenGL ES backend) when no GPU is found.
 * An explicit choice that cannot start is an error.
 * @throws Error naming the package to install when an explicit choice is unavailable.
 */
export async function initBackend(choice: BackendChoice = 'auto'): Promise<BackendInfo> {
  const candidates = choice === 'auto' ? ORDER : [choice];
  const skipped: string[] = [];
  for (const c of candidates) {
    try {
      const { detail, adapter, threads, poolThreads } = await start(c, choice === 'webgpu');
      current = {
        name: tf.getBackend(),
        detail,
        tfjsVersion: tf.version.tfjs,
        skipped,
        ...(adapter ? { adapter } : {}),
        ...(threads !== undefined ? { threads } : {}),
        ...(poolThreads !== undefined ? { poolThreads } : {}),
      };
      const notes = kernelInstallers.map((k) => k(current!.name)).filter((n): n is string => !!n);
      if (notes.length) current.detail += `; ${notes.join('; ')}`;
      return current;
    } catch (e) {
      skipped.push(`${c}: ${(e as Error).message.split('\n')[0]}`);
    }
  }
  throw new Error(`backend "${choice}" is not available: ${skipped.join('; ')}. Install @tensorflow/tfjs-node(-gpu) for the native backends, @tensorflow/tfjs-backend-webgpu and webgpu for WebGPU, or use "backend": "wasm".`);
}

async function start(
  c: Exclude<BackendChoice, 'auto'>,
  allowSoftwareGpu: boolean,
): Promise<{ detail: string; adapter?: GpuAdapterInfo; threads?: number; poolThreads?: number }> {
  switch (c) {
    case 'webgpu':
      return startWebGpu(allowSoftwareGpu);
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
      const { threads, pool, fallback } = await startWasm();
      await tf.ready();
      guardWasmHeap();
      const simd = await tf.env().getAsync('WASM_HAS_SIMD_SUPPORT');
      const how = [
        simd ? 'SIMD' : '',
        `${threads} thread${threads === 1 ? '' : 's'}`,
        pool !== threads ? `XNNPACK's pool ${pool}` : '',
        fallback ? `threads off: ${fallback}` : '',
      ].filter(Boolean).join(', ');
      return { detail: `@tensorflow/tfjs-backend-wasm ${tf.version.tfjs} (${how})`, threads, poolThreads: pool };
    }
    case 'cpu':
      if (!(await tf.setBackend('cpu'))) throw new Error('the CPU backend did not start');
      return { detail: `@tensorflow/tfjs-backend-cpu ${tf.version.tfjs}` };
  }
}
