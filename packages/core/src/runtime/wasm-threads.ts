/**
 * Starts @tensorflow/tfjs-backend-wasm with its threaded SIMD build in Node, falling back to the
 * single-threaded SIMD build when that fails. This is the one place that works around the
 * package's loader (tfjs-backend-wasm 4.22.0; tfjs issue #3830 keeps threads off in Node):
 *
 * 1. The flag `WASM_HAS_MULTITHREAD_SUPPORT` is hard-coded false when `IS_NODE`; it is set true.
 * 2. Emscripten's pthread workers are started from a `blob:` URL, which Node's `worker_threads`
 *    refuse; `URL.createObjectURL` is swapped, for the duration of the start only, for one that
 *    returns a real file: the package's own worker script (`wasm-out/*.worker.js`), written to the
 *    temporary folder, told to load the factory from `wasm-out/tfjs-backend-wasm-threaded-simd.js`
 *    instead of the Blob the main thread posts it.
 * 3. The backend caps its XNNPACK pool at `emscripten_num_logical_cores() / 2` (it assumes two
 *    hyper-threads per core), read from `os.cpus().length` once when the module starts; `os.cpus`
 *    is swapped during the start so that the requested count passes the cap.
 *
 * Both swaps are undone before this returns. Anything unexpected (a changed worker script, a start
 * that fails or does not finish within the timeout) falls back to one thread, and the reason is
 * returned so the run log says it.
 *
 * XNNPACK's pool and kernels with threads of their own (peftkit's GEMM, @peftkit/models) do not share
 * the cores well: after each of its operations a pool worker spins for about a millisecond before it
 * sleeps (pthreadpool's spin-wait), on a core the next product's threads need. On the 2-core
 * development machine a product right after an Add or a Sigmoid ran 25 to 30 % slower for it. A
 * package whose kernels run their own threads says so with {@link claimWasmThreads}; XNNPACK's pool
 * then runs one thread (the memory stays shared, so those kernels still get every thread).
 */
import * as tf from '@tensorflow/tfjs';
import { createHash } from 'node:crypto';
import { existsSync, renameSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import { dirname, join } from 'node:path';

/** The environment variable that sets the number of WASM threads (1 turns threads off). */
export const WASM_THREADS_ENV = 'PEFTKIT_WASM_THREADS';

/** How the WASM backend started. */
export interface WasmStart {
  /** Threads for compute: those asked for when the threaded build started, else 1 (single-threaded). */
  threads: number;
  /** Threads in XNNPACK's pool, as the backend reports it: `threads`, or 1 when a kernel package claimed them. */
  pool: number;
  /** Why the threaded build was not used, when it was asked for and not used. */
  fallback?: string;
}

/** Options of {@link startWasm}; the defaults are what a run uses. */
export interface WasmStartOptions {
  /** Threads wanted; default {@link requestedWasmThreads}. */
  threads?: number;
  /** Milliseconds to wait for the threaded build before falling back (default 60 000). */
  timeoutMs?: number;
  /** Replaces the worker script's text (tests use it to make the threaded start fail). */
  workerScript?: (script: string) => string;
}

/**
 * The thread count asked for: the environment variable `PEFTKIT_WASM_THREADS` when set to a number
 * (at most 8, the backend's pre-started worker pool); unset or `auto`, the cores that are idle now:
 * the logical cores minus the cores' busy time over a short sample (see {@link busyCores}), rounded,
 * at least 1 and at most 8. On an idle 2-vCPU machine 2 threads made the main job's pretraining step
 * 1.3 to 2 times faster; with other processes on the cores a second thread waited for one and made
 * it 2 times slower (docs/benchmarks.md, "WASM threads"), hence the idle cores in the rule. Results
 * do not depend on the count (XNNPACK splits output tiles, not sums: the same bits with 1 or 2 threads).
 * @param measure - measures the busy cores and the core count, only for `auto` (default {@link busyCores}; tests pass their own).
 * @throws Error naming the variable when it is neither `auto` nor a positive integer.
 */
export async function requestedWasmThreads(env: NodeJS.ProcessEnv = process.env, measure: () => Promise<{ busy: number; cores: number }> = busyCores): Promise<number> {
  const raw = env[WASM_THREADS_ENV];
  if (raw === undefined || raw === '' || raw === 'auto') {
    const { busy, cores } = await measure();
    return Math.max(1, Math.min(8, Math.round(cores - busy)));
  }
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 1) throw new Error(`${WASM_THREADS_ENV}=${raw}: must be a positive integer or auto (1 turns WASM threads off)`);
  return Math.min(8, n);
}

/**
 * How many cores other processes keep busy now: Σ over cores of the non-idle share of their time
 * during `ms` milliseconds (os.cpus() times, sampled twice), while this process only waits. Not the
 * 1-minute load average, which still counts work that has ended: `npm ci` just before a run raised
 * it enough to turn a second thread off on an idle machine.
 */
export async function busyCores(ms = 300): Promise<{ busy: number; cores: number }> {
  const before = os.cpus().map((c) => c.times);
  await new Promise((r) => setTimeout(r, ms));
  const after = os.cpus().map((c) => c.times);
  let busy = 0;
  after.forEach((t, i) => {
    const b = before[i];
    if (!b) return;
    const total = t.user + t.nice + t.sys + t.irq + t.idle - (b.user + b.nice + b.sys + b.irq + b.idle);
    if (total > 0) busy += 1 - (t.idle - b.idle) / total;
  });
  return { busy, cores: after.length };
}

const claims: (() => boolean)[] = [];

/**
 * Registers a package whose WASM kernels run threads of their own on the backend's shared memory: when `claim`
 * returns true as the backend starts, XNNPACK's pool runs one thread and leaves the cores to those kernels (see the
 * module's comment). Register before the backend starts; a later claim changes nothing.
 */
export function claimWasmThreads(claim: () => boolean): void {
  claims.push(claim);
}

/** The line in the package's worker script where it loads the factory; the patch goes in front. */
const FACTORY_LOAD = 'if(typeof e.data.urlOrBlob=="string")';

/**
 * Sets the WASM backend as tfjs's backend, threaded when more than one thread is asked for and the
 * threaded build starts, else single-threaded.
 * @returns the thread count in use and, after a fallback, why.
 * @throws Error when not even the single-threaded build starts.
 */
export async function startWasm(opts: WasmStartOptions = {}): Promise<WasmStart> {
  // The backend starts once per process; a later call (initBackend after a direct start) reports that start.
  if (startedWith && tf.findBackend('wasm')) {
    if (!(await tf.setBackend('wasm'))) throw new Error('the WASM backend did not start');
    return startedWith;
  }
  startedWith = await startOnce(opts);
  return startedWith;
}

let startedWith: WasmStart | undefined;

async function startOnce(opts: WasmStartOptions): Promise<WasmStart> {
  const wasm = await import('@tensorflow/tfjs-backend-wasm');
  const threads = opts.threads ?? (await requestedWasmThreads());
  // XNNPACK's pool: every thread, or one when a package claimed them (claimWasmThreads).
  const pool = claims.some((c) => c()) ? 1 : threads;
  let fallback: string | undefined;
  if (threads > 1) {
    try {
      if (await startThreaded(wasm, pool, opts)) return { threads, pool: wasm.getThreadsCount() };
      fallback = 'the threaded build did not start';
    } catch (e) {
      fallback = (e as Error).message.split('\n')[0];
    }
  }
  tf.env().set('WASM_HAS_MULTITHREAD_SUPPORT', false);
  wasm.setThreadsCount(1);
  if (!(await tf.setBackend('wasm'))) throw new Error('the WASM backend did not start');
  return { threads: 1, pool: wasm.getThreadsCount(), fallback };
}

/** Starts the threaded build with `threads` in XNNPACK's pool (1 still loads the threaded build, whose memory is shared). */
async function startThreaded(wasm: typeof import('@tensorflow/tfjs-backend-wasm'), threads: number, opts: WasmStartOptions): Promise<boolean> {
  if (typeof SharedArrayBuffer === 'undefined') throw new Error('SharedArrayBuffer is not available');
  const require = createRequire(import.meta.url);
  const out = join(dirname(require.resolve('@tensorflow/tfjs-backend-wasm/package.json')), 'wasm-out');
  const factory = join(out, 'tfjs-backend-wasm-threaded-simd.js');
  if (!existsSync(factory)) throw new Error(`${factory} is missing`);
  let script = (require(join(out, 'tfjs-backend-wasm-threaded-simd.worker.js')) as { wasmWorkerContents: string }).wasmWorkerContents;
  if (!script.includes(FACTORY_LOAD)) throw new Error('the package\'s pthread worker script changed; threads need a new loader patch');
  script = script.replace(FACTORY_LOAD, `e.data.urlOrBlob=${JSON.stringify(factory)};${FACTORY_LOAD}`);
  if (opts.workerScript) script = opts.workerScript(script);
  // The package escapes newlines the same way before making its Blob (its strings hold "\n").
  script = script.replace(/\n/g, '\\n');
  // Named by content, written by rename: concurrent runs share one file and never read a partial one.
  const workerFile = join(os.tmpdir(), `peftkit-tfjs-wasm-pthread-${createHash('sha256').update(script).digest('hex').slice(0, 16)}.cjs`);
  if (!existsSync(workerFile)) {
    writeFileSync(`${workerFile}.${process.pid}`, script);
    renameSync(`${workerFile}.${process.pid}`, workerFile);
  }

  const createObjectURL = URL.createObjectURL;
  const cpus = os.cpus;
  const threadsModule = require('node:worker_threads') as typeof import('node:worker_threads');
  const NodeWorker = threadsModule.Worker;
  const workers: import('node:worker_threads').Worker[] = [];
  let failed: (e: Error) => void = () => {};
  const workerFailed = new Promise<never>((_, reject) => (failed = reject));
  workerFailed.catch(() => {}); // only raced below; a later rejection is not unhandled
  let starting = true;
  let abandoned = false;
  // Emscripten rethrows a pthread worker's error from its 'error' listener, which would end the
  // process; while starting, the error instead fails the start (and the fallback takes over).
  class StartGuardedWorker extends NodeWorker {
    constructor(...args: ConstructorParameters<typeof NodeWorker>) {
      super(...args);
      workers.push(this);
    }
    override on(event: string | symbol, listener: (...a: any[]) => void): this {
      if (event !== 'error') return super.on(event, listener);
      return super.on(event, (e: Error) => {
        // After a failed start the remaining workers' errors are moot (they are being terminated).
        if (starting || abandoned) failed(new Error(`a pthread worker failed: ${e?.message ?? e}`));
        else listener(e);
      });
    }
  }
  tf.env().set('WASM_HAS_MULTITHREAD_SUPPORT', true);
  wasm.setThreadsCount(threads);
  URL.createObjectURL = () => workerFile;
  const cpu0 = cpus()[0];
  os.cpus = () => Array.from({ length: 2 * threads }, () => cpu0);
  threadsModule.Worker = StartGuardedWorker;
  let timer: NodeJS.Timeout | undefined;
  try {
    const timeoutMs = opts.timeoutMs ?? 60_000;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`the threaded build did not start within ${timeoutMs / 1000} s`)), timeoutMs);
    });
    const ok = await Promise.race([tf.setBackend('wasm'), timeout, workerFailed]);
    // XNNPACK's pool threads wait for work forever, and Emscripten refs a worker while its thread
    // runs: without this the process would never exit on its own.
    for (const w of workers) w.unref();
    return ok;
  } catch (e) {
    abandoned = true;
    for (const w of workers) void w.terminate();
    throw e;
  } finally {
    starting = false;
    clearTimeout(timer);
    threadsModule.Worker = NodeWorker;
    URL.createObjectURL = createObjectURL;
    os.cpus = cpus;
  }
}
