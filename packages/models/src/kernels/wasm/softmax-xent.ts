/**
 * `PeftkitSoftmaxXent` and `PeftkitSoftmaxXentGrad` for the WASM backend (contract: kernels/reference/softmax-xent.ts):
 * the WebAssembly loops of ./softmax-xent-wat.ts over the backend's heap, one row at a time; each row's logsumexp
 * (m + log S, in float64) and negative log-likelihood in JavaScript. Where the backend's memory cannot be found, the
 * reference's loops over views of the heap: slower, within float32 rounding of the same values.
 */
import * as tf from '@tensorflow/tfjs';
import type { WasmHeapBackend, WasmKernelArgs } from './heap.js';
import { PEFTKIT_SOFTMAX_XENT, PEFTKIT_SOFTMAX_XENT_GRAD } from '../softmax-xent.js';
import { softmaxXentGradReference, softmaxXentReference } from '../reference/softmax-xent.js';
import { softmaxXentWat } from './softmax-xent-wat.js';
import { backendMemory, kernelModule, type EmscriptenModule } from './wasm-module.js';

interface Loops {
  softmaxRow: (x: number, y: number, n: number, stats: number) => void;
  scale: (p: number, g: number, n: number, s: number) => void;
  /** 8 bytes of the heap for a row's max and sum (never freed: one per backend). */
  stats: number;
}
const simdModule = kernelModule<{ softmax_row: Loops['softmaxRow']; scale: Loops['scale'] }>('peftkit-softmax-xent.wat', softmaxXentWat);
const withStats = new WeakMap<object, Loops>();

/** The module's loops bound to the backend's memory, and their scratch, or null where its memory is not found. */
function loops(backend: unknown): Loops | null {
  const ex = simdModule(backend);
  if (!ex) return null;
  let l = withStats.get(ex);
  if (!l) {
    const stats = (backendMemory(backend)!.module as EmscriptenModule)._malloc(8) >>> 0;
    if (stats === 0) throw new Error('the WASM heap has no room for PeftkitSoftmaxXent\'s scratch');
    l = { softmaxRow: ex.softmax_row, scale: ex.scale, stats };
    withStats.set(ex, l);
  }
  return l;
}

/** [r, V] float32 and int32 targets [r] in [0, V). @throws Error naming the kernel and what is wrong. */
function checkRows(kernel: string, m: tf.TensorInfo, targets: tf.TensorInfo, ids: ArrayLike<number>): [number, number] {
  if (m.shape.length !== 2 || m.dtype !== 'float32' || targets.shape.length !== 1 || targets.shape[0] !== m.shape[0] || targets.dtype !== 'int32') {
    throw new Error(`${kernel}: float32 [r, V] and int32 targets [r] expected, got ${m.dtype} [${m.shape}] and ${targets.dtype} [${targets.shape}]`);
  }
  const [r, V] = m.shape;
  for (let i = 0; i < r; i++) if (!(ids[i] >= 0 && ids[i] < V)) throw new Error(`${kernel}: target ${ids[i]} of row ${i} is not in [0, ${V})`);
  return [r, V];
}

function softmaxXentWasm(args: WasmKernelArgs): tf.TensorInfo[] {
  const { logits, targets } = args.inputs as { logits: tf.TensorInfo; targets: tf.TensorInfo };
  const backend = args.backend as WasmHeapBackend;
  const [r, V] = checkRows(PEFTKIT_SOFTMAX_XENT, logits, targets, backend.typedArrayFromHeap(targets));
  const probs = backend.makeOutput([r, V], 'float32');
  const nll = backend.makeOutput([r], 'float32');
  // Views are taken after makeOutput: allocating may grow the WASM memory and detach older views.
  const xs = backend.typedArrayFromHeap(logits), ps = backend.typedArrayFromHeap(probs), ns = backend.typedArrayFromHeap(nll);
  const ids = backend.typedArrayFromHeap(targets);
  const l = loops(args.backend);
  if (!l) {
    const ref = softmaxXentReference(xs, r, V, ids);
    ps.set(ref.probs);
    ns.set(ref.nll);
    return [probs, nll];
  }
  const st = new Float32Array(ps.buffer, l.stats, 2); // the row's max and sum, as softmax_row leaves them
  for (let i = 0; i < r; i++) {
    l.softmaxRow(xs.byteOffset + 4 * i * V, ps.byteOffset + 4 * i * V, V, l.stats);
    ns[i] = st[0] + Math.log(st[1]) - xs[i * V + ids[i]];
  }
  return [probs, nll];
}

function softmaxXentGradWasm(args: WasmKernelArgs): tf.TensorInfo {
  const { probs, targets, scale } = args.inputs as { probs: tf.TensorInfo; targets: tf.TensorInfo; scale: tf.TensorInfo };
  const backend = args.backend as WasmHeapBackend;
  const [r, V] = checkRows(PEFTKIT_SOFTMAX_XENT_GRAD, probs, targets, backend.typedArrayFromHeap(targets));
  if (scale.dtype !== 'float32' || scale.shape.length !== 1 || scale.shape[0] !== r) throw new Error(`${PEFTKIT_SOFTMAX_XENT_GRAD}: float32 scale [${r}] expected, got ${scale.dtype} [${scale.shape}]`);
  const out = backend.makeOutput([r, V], 'float32');
  const ps = backend.typedArrayFromHeap(probs), gs = backend.typedArrayFromHeap(out);
  const ids = backend.typedArrayFromHeap(targets), ss = backend.typedArrayFromHeap(scale);
  const l = loops(args.backend);
  if (!l) {
    gs.set(softmaxXentGradReference(ps, r, V, ids, ss));
    return out;
  }
  for (let i = 0; i < r; i++) {
    l.scale(ps.byteOffset + 4 * i * V, gs.byteOffset + 4 * i * V, V, ss[i]);
    gs[i * V + ids[i]] = (ps[i * V + ids[i]] - 1) * ss[i];
  }
  return out;
}

/** The kernel configs, registered by `registerKernels` (kernels/index.ts). */
export const softmaxXentWasmConfig: tf.KernelConfig = { kernelName: PEFTKIT_SOFTMAX_XENT, backendName: 'wasm', kernelFunc: softmaxXentWasm as unknown as tf.KernelFunc };
export const softmaxXentGradWasmConfig: tf.KernelConfig = { kernelName: PEFTKIT_SOFTMAX_XENT_GRAD, backendName: 'wasm', kernelFunc: softmaxXentGradWasm as unknown as tf.KernelFunc };
