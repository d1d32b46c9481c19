/**
 * peftkit's float32 GEMM on tfjs-backend-wasm's heap (the module's text and loop nest: ./gemm-wat.ts), run on the
 * backend's thread count: the product is cut into chunks of the batch's slices, columns or rows, and the calling
 * thread and one Node worker per further thread take them from a shared queue, all in the same shared memory.
 *
 * Why not XNNPACK's GEMM, which the backend calls: it reaches 16 to 25 GFLOP/s per thread here, this kernel 27 to
 * 37 with relaxed SIMD's fused multiply-add, packing included (its micro-kernel alone 38 to 44; docs/benchmarks.md),
 * and it takes transposed and strided operands without copying them. A helper that dies while a product waits for
 * it would hang that product; helpers only run the module's loops, and a trap in them is caught and reported.
 *
 * Relaxed SIMD is on by default from Node 22 (V8 11.4); Node 20 has it behind V8's
 * `--experimental-wasm-relaxed-simd`, which this module sets (`v8.setFlagsFromString`) when the first compile
 * refuses the instruction. Where that fails too, the multiply-then-add build is used.
 * `PEFTKIT_WASM_GEMM` chooses: `fma` (the default), `simd` (no fused multiply-add) or `xnnpack` (the backend's own
 * kernel, this module unused).
 *
 * Every element of C gets the same operations in the same order whatever the thread count or the split: a run is
 * reproducible from its seed with 1 or 2 threads. Results differ from XNNPACK's in the last bits (another
 * summation order, fused rounding), within the tolerance of the tests against the float64 reference.
 */
import * as tf from '@tensorflow/tfjs';
import { currentBackend } from '@peftkit/core';
import v8 from 'node:v8';
import { Worker } from 'node:worker_threads';
import { FEW_ROWS, gemmWat, MR, NR, SCRATCH_BYTES } from './gemm-wat.js';
import { assembleWat, backendMemory, WA, type WasmModule } from './wasm-module.js';

/** The environment variable that chooses the product kernel on WASM: `fma` (default), `simd` or `xnnpack`. */
export const WASM_GEMM_ENV = 'PEFTKIT_WASM_GEMM';

/** Which kernel the WASM backend's products use. */
export type WasmGemmKind = 'fma' | 'simd' | 'xnnpack';

const binaries = new Map<string, Uint8Array>();
/**
 * The module's binary (gemm-wat.ts's text, assembled by wabt) for a memory kind and arithmetic, assembled once.
 * @param shared - the module imports a shared memory (the threaded build's)
 * @param fma - relaxed SIMD's fused multiply-add, else multiply then add
 * @throws Error (wabt's) if the text does not assemble: a bug in gemm-wat.ts.
 */
export function gemmBinary(shared: boolean, fma: boolean): Uint8Array {
  const key = `${shared}/${fma}`;
  let bin = binaries.get(key);
  if (!bin) {
    bin = assembleWat(`peftkit-gemm-${key}.wat`, gemmWat({ shared, fma }), { simd: true, threads: shared, relaxed_simd: fma });
    binaries.set(key, bin);
  }
  return bin;
}

/** Compiles the FMA build, turning on Node 20's relaxed-SIMD flag when needed; undefined where the engine has no relaxed SIMD. */
function compileFma(shared: boolean): WasmModule | undefined {
  try {
    return new WA.Module(gemmBinary(shared, true));
  } catch {
    try {
      v8.setFlagsFromString('--experimental-wasm-relaxed-simd');
      return new WA.Module(gemmBinary(shared, true));
    } catch {
      return undefined;
    }
  }
}

/** The kind asked for by {@link WASM_GEMM_ENV}. @throws Error naming the variable on another value. */
export function requestedWasmGemm(env: NodeJS.ProcessEnv = process.env): WasmGemmKind {
  const raw = env[WASM_GEMM_ENV];
  if (raw === undefined || raw === '') return 'fma';
  if (raw === 'fma' || raw === 'simd' || raw === 'xnnpack') return raw;
  throw new Error(`${WASM_GEMM_ENV}=${raw}: must be fma, simd or xnnpack`);
}

/** The GEMM's arguments after the operands, in the module's order (see gemm-wat.ts). */
const ARGS = 18;
/** Control words of a worker: [job generation, done generation, failed, ...ARGS]. */
const CTRL_WORDS = 3 + ARGS;

/** The helper's third control word once it has instantiated the module (0 after a job, 1 after a failed one). */
const READY = 2;
/** How long the first product waits for a helper to start before it runs without it. */
const START_TIMEOUT_MS = 10_000;

/**
 * How long a helper spins on its control word for the next job before it sleeps, and the calling thread for a
 * helper's share before it sleeps, in ms. Products in a step come tens to hundreds of microseconds apart; a thread
 * woken from sleep (a futex) starts late. Spinning 0.1 to 0.6 ms made LoRA steps 6 to 9 % faster (GPT-2 small
 * 101 → 107-110 tokens/s, the SmolLM shape 81 → 87-89; 2 ms did not help; docs/benchmarks.md), as XNNPACK's pool
 * spins for its own workers.
 */
const SPIN_MS = 0.2;

/** Chunks a shared product is cut into, at most (the queue's table in shared memory). */
const MAX_CHUNKS = 512;
/** Words per chunk in the queue's table: the share's a, b, c, M, N, batch. */
const CHUNK_WORDS = 6;
/** The queue's header: [next chunk to take, chunk count]; the table follows. */
const QUEUE_HEAD = 2;
/** Where a chunk's words go in the GEMM's arguments (a, b, c, M, N, batch). */
const CHUNK_ARGS = [0, 3, 6, 8, 9, 11];

/**
 * A helper thread's loop: wait for a job generation, take chunks from the shared queue until none is left (each runs
 * the GEMM with the job's arguments and the chunk's operands and sizes), publish the generation as done.
 */
const WORKER_SOURCE = `
const READY = ${READY};
const SPIN_MS = ${SPIN_MS};
const { workerData } = require('node:worker_threads');
const { module, memory, ctrl, queue } = workerData;
const c = new Int32Array(ctrl);
const q = new Int32Array(queue);
const gemm = new WebAssembly.Instance(module, { env: { memory } }).exports.gemm;
const args = new Array(${ARGS});
Atomics.store(c, 2, READY);
Atomics.notify(c, 2);
let seen = 0;
for (;;) {
  const t0 = performance.now();
  for (let i = 1; Atomics.load(c, 0) === seen; i++) {
    if ((i & 255) === 0 && performance.now() - t0 > SPIN_MS) {
      Atomics.wait(c, 0, seen);
      break;
    }
  }
  seen = Atomics.load(c, 0);
  if (seen < 0) break;
  try {
    for (let k = 0; k < ${ARGS}; k++) args[k] = c[3 + k];
    for (let i = Atomics.add(q, 0, 1); i < q[1]; i = Atomics.add(q, 0, 1)) {
      const o = ${QUEUE_HEAD} + ${CHUNK_WORDS} * i;
      ${CHUNK_ARGS.map((a, w) => `args[${a}] = q[o + ${w}];`).join(' ')}
      gemm(...args);
    }
    c[2] = 0;
  } catch (e) {
    c[2] = 1;
  }
  Atomics.store(c, 1, seen);
  Atomics.notify(c, 1);
}`;

interface Helper {
  worker: Worker;
  ctrl: Int32Array;
  generation: number;
}

/** The GEMM bound to one backend's memory. */
interface BoundGemm {
  kind: 'fma' | 'simd';
  gemm: (...args: number[]) => void;
  /** Scratch per thread: [pa, pb, tile] byte offsets. */
  scratch: [number, number, number][];
  helpers: Helper[];
  /** The shared chunk queue: [next, count, then CHUNK_WORDS words per chunk]. */
  queue: Int32Array;
}

const bound = new WeakMap<object, BoundGemm | null>();

/** Products smaller than this many multiply-adds run on one thread: waking a helper costs tens of microseconds. */
const SPLIT_MIN_MACS = 1 << 20;

/**
 * The GEMM for the WASM backend now in use, made on first use (module compiled against the backend's memory, scratch
 * allocated in its heap, helper threads started); null when `PEFTKIT_WASM_GEMM=xnnpack` or the module cannot run here.
 */
function gemmFor(backend: unknown): BoundGemm | null {
  const found = backendMemory(backend);
  if (!found) return null;
  const { module, memory, shared } = found;
  if (bound.has(module)) return bound.get(module)!;
  let made: BoundGemm | null = null;
  const kind = requestedWasmGemm();
  if (kind !== 'xnnpack') {
    const fmaModule = kind === 'fma' ? compileFma(shared) : undefined;
    const compiled = fmaModule ?? new WA.Module(gemmBinary(shared, false));
    const gemm = new WA.Instance(compiled, { env: { memory } }).exports.gemm as (...args: number[]) => void;
    const threads = shared ? Math.max(1, currentBackend()?.threads ?? 1) : 1;
    const scratch: [number, number, number][] = [];
    for (let t = 0; t < threads; t++) {
      const at = (bytes: number) => {
        const p = module._malloc(bytes + 16) >>> 0;
        if (p === 0) throw new Error('the WASM heap has no room for the GEMM\'s scratch');
        return (p + 15) & ~15; // 16-byte aligned; never freed (one set per thread for the process's life)
      };
      scratch.push([at(SCRATCH_BYTES.a), at(SCRATCH_BYTES.b), at(SCRATCH_BYTES.tile)]);
    }
    const helpers: Helper[] = [];
    const queue = new Int32Array(new SharedArrayBuffer((QUEUE_HEAD + MAX_CHUNKS * CHUNK_WORDS) * 4));
    for (let t = 1; t < threads; t++) {
      const ctrl = new Int32Array(new SharedArrayBuffer(CTRL_WORDS * 4));
      // execArgv []: the parent's flags (tsx's loader in development) are not needed by this plain script.
      const worker = new Worker(WORKER_SOURCE, { eval: true, execArgv: [], workerData: { module: compiled, memory, ctrl: ctrl.buffer, queue: queue.buffer } });
      worker.unref(); // it waits for work forever; the process must still exit on its own
      // Its errors reach this thread's event loop only after the product that waits for it: wait for its start
      // here, bounded, and run without it if it does not come.
      const t0 = Date.now();
      while (Atomics.load(ctrl, 2) !== READY && Date.now() - t0 < START_TIMEOUT_MS) Atomics.wait(ctrl, 2, 0, 50);
      if (Atomics.load(ctrl, 2) !== READY) {
        void worker.terminate();
        break;
      }
      helpers.push({ worker, ctrl, generation: 0 });
    }
    scratch.length = helpers.length + 1;
    made = { kind: fmaModule ? 'fma' : 'simd', gemm, scratch, helpers, queue };
  }
  bound.set(module, made);
  return made;
}

/** Which kernel the current WASM backend's products use (`xnnpack` when peftkit's GEMM is off or cannot run), and on how many threads. */
export function wasmGemmInfo(): { kind: WasmGemmKind; threads: number } {
  const g = gemmFor(tf.backend());
  return g ? { kind: g.kind, threads: g.scratch.length } : { kind: 'xnnpack', threads: 1 };
}

/** A product in the heap: byte offsets and strides as gemm-wat.ts's `gemm` takes them. */
export interface HeapProduct {
  /** A's slice 0 (bytes); element (i, p) at a + i·ars + p·aks. */
  a: number; ars: number; aks: number;
  /** B's slice 0 (bytes); element (p, j) at b + p·bks + j·bcs. */
  b: number; bks: number; bcs: number;
  /** C's slice 0 (bytes), row-major [M, N]. */
  c: number;
  M: number; N: number; K: number;
  /** Slices, and the bytes between them (0: the operand is broadcast). */
  batch: number; sa: number; sb: number; sc: number;
}

/**
 * Sizes of the chunks `units` units of work are cut into for `threads` threads, large first (guided scheduling):
 * each a 2·threads-th of what is left, at least `min` (the last takes a remainder under `min`; only a total under
 * `min` gives a smaller chunk). The threads take chunks as they come free, so one that starts
 * late (a helper woken from sleep) or runs slow (its core shared) does fewer, and the last chunks are small.
 * At most `maxChunks` chunks: `min` grows where it would give more.
 */
export function guidedChunks(units: number, threads: number, min: number, maxChunks = MAX_CHUNKS): number[] {
  min = Math.max(min, Math.ceil(units / Math.max(1, maxChunks)));
  const sizes: number[] = [];
  for (let left = units; left > 0; ) {
    let s = Math.min(left, Math.max(min, Math.ceil(left / (2 * threads))));
    if (left - s < min) s = left; // no chunk under the minimum: the last takes what would be left
    sizes.push(s);
    left -= s;
  }
  return sizes;
}

/**
 * Smallest chunk, in columns or rows, of a product shared by columns or rows. Each chunk packs the other operand's
 * part again (all of A's rows for a chunk of columns), so chunks cost; but a thread that runs out of chunks waits
 * for the other's last one. GPT-2 small's LoRA step (1 x 128, 2 threads) waited 40 to 70 ms a step for helpers with
 * the work split in halves or a smallest chunk of 128, 12 to 28 ms at 64, 9 to 16 ms at 16 (docs/benchmarks.md).
 */
const MIN_CHUNK = 64;

/**
 * Runs C = A · B on the backend's heap with peftkit's GEMM, shared between the threads in chunks ({@link guidedChunks}):
 * of the batch's slices when there are at least 4 per thread or as many for each thread, else of each slice's columns
 * or rows, whichever are more. C must not overlap A or B.
 * @param maxThreads - at most this many threads (tests compare 1 with all)
 * @returns false when peftkit's GEMM is off or cannot run (the caller uses the backend's kernel).
 * @throws Error when a helper thread's share failed (a trap: an operand outside the heap).
 */
export function heapGemm(backend: unknown, p: HeapProduct, maxThreads = Infinity): boolean {
  const g = gemmFor(backend);
  if (!g) return false;
  // A few-row product streams B from memory: it counts as FEW_ROWS rows' work (GPT-2 small's 768 x 768 weight at one
  // row ran at 9 GB/s on one thread, 14 on two).
  const threads = Math.max(p.M, FEW_ROWS) * p.N * p.K * p.batch >= SPLIT_MIN_MACS ? Math.min(maxThreads, g.scratch.length) : 1;
  // Chunks: [a, b, c, M, N, batch]. By slices when there are many, or as many for each thread; else each slice by
  // columns when there are more columns than rows (each chunk then packs only its part of B, the bigger operand), else
  // by rows, whole tiles per chunk, all the slices' pieces in one queue (GQA's 3 key/value groups on 2 threads were
  // 2 slices against 1). A small product gets smaller chunks, at least 4 per thread.
  const chunks: number[][] = [];
  const smallest = (units: number, most: number) => Math.min(most, Math.max(1, Math.ceil(units / (4 * threads))));
  if (threads === 1) chunks.push([p.a, p.b, p.c, p.M, p.N, p.batch]);
  else if (p.batch >= 4 * threads || p.batch % threads === 0) {
    let s0 = 0;
    for (const s of guidedChunks(p.batch, threads, 1)) {
      chunks.push([p.a + s0 * p.sa, p.b + s0 * p.sb, p.c + s0 * p.sc, p.M, p.N, s]);
      s0 += s;
    }
  } else {
    const perSlice = Math.floor(MAX_CHUNKS / p.batch); // the queue's table holds MAX_CHUNKS
    for (let s = 0; s < p.batch; s++) {
      const [a, b, c] = [p.a + s * p.sa, p.b + s * p.sb, p.c + s * p.sc];
      if (p.N > p.M) {
        const units = Math.ceil(p.N / NR);
        let j0 = 0;
        for (const u of guidedChunks(units, threads, smallest(units, MIN_CHUNK / NR), perSlice)) {
          const cols = Math.min(u * NR, p.N - j0);
          chunks.push([a, b + j0 * p.bcs, c + j0 * 4, p.M, cols, 1]);
          j0 += cols;
        }
      } else {
        const units = Math.ceil(p.M / MR);
        let r0 = 0;
        // Two tiles at least: a chunk of at most FEW_ROWS rows would take the few-row path, whose sums run in another
        // order, and the bits would depend on the split.
        for (const u of guidedChunks(units, threads, Math.max(2, smallest(units, MIN_CHUNK / MR)), perSlice)) {
          const rows = Math.min(u * MR, p.M - r0);
          chunks.push([a + r0 * p.ars, b, c + r0 * p.N * 4, rows, p.N, 1]);
          r0 += rows;
        }
      }
    }
  }
  const args = (chunk: number[], t: number) => {
    const [a, b, c, M, N, batch] = chunk;
    const [pa, pb, tile] = g.scratch[t];
    return [a, p.ars, p.aks, b, p.bks, p.bcs, c, 4 * p.N, M, N, p.K, batch, p.sa, p.sb, p.sc, pa, pb, tile];
  };
  if (chunks.length === 1) {
    g.gemm(...args(chunks[0], 0));
    return true;
  }
  // The queue: the calling thread and every helper take the next chunk until none is left.
  const q = g.queue;
  chunks.forEach((chunk, i) => q.set(chunk, QUEUE_HEAD + i * CHUNK_WORDS));
  q[1] = chunks.length;
  Atomics.store(q, 0, 0);
  const started: Helper[] = [];
  for (let t = 1; t < threads; t++) {
    const h = g.helpers[t - 1];
    h.ctrl.set(args(chunks[0], t), 3); // the job's strides and this thread's scratch; each chunk sets its operands
    h.generation = (h.generation + 1) & 0x3fffffff;
    Atomics.store(h.ctrl, 0, h.generation);
    Atomics.notify(h.ctrl, 0);
    started.push(h);
  }
  try {
    for (let i = Atomics.add(q, 0, 1); i < chunks.length; i = Atomics.add(q, 0, 1)) g.gemm(...args(chunks[i], 0));
  } finally {
    for (const h of started) {
      const t0 = performance.now();
      for (let i = 1, done = Atomics.load(h.ctrl, 1); done !== h.generation; done = Atomics.load(h.ctrl, 1), i++) {
        if ((i & 255) === 0 && performance.now() - t0 > SPIN_MS) Atomics.wait(h.ctrl, 1, done);
      }
    }
  }
  if (started.some((h) => h.ctrl[2] !== 0)) throw new Error('peftkit\'s WASM GEMM failed in a helper thread (an operand outside the heap)');
  return true;
}
