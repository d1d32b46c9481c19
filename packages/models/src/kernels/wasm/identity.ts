/**
 * Identity for the WASM backend, sharing the input's memory instead of copying it, as the CPU and
 * WebGL backends do (`incRef` on the data id; tfjs tensors are immutable, and `Variable.assign`
 * swaps data ids rather than writing in place, so a shared buffer never changes under a reader).
 *
 * Why it matters: tfjs saves every tensor a gradient needs through `engine.clone`, which runs this
 * kernel. tfjs-backend-wasm 4.22's Identity copies, so during training each weight read by a
 * matMul and each saved activation was duplicated in the WASM heap: for GPT-2 small at 128 tokens
 * the forward pass alone held 1.2 GB of copies, and LoRA-style training did not fit in the 4 GiB heap.
 */
import * as tf from '@tensorflow/tfjs';

/** The part of tfjs-backend-wasm's `BackendWasm` this kernel uses. */
interface RefCountingBackend {
  incRef(dataId: tf.DataId): void;
}

function identity(args: { inputs: tf.NamedTensorInfoMap; backend: unknown }): tf.TensorInfo {
  const { x } = args.inputs as { x: tf.TensorInfo };
  (args.backend as RefCountingBackend).incRef(x.dataId);
  return { dataId: x.dataId, shape: x.shape, dtype: x.dtype };
}

/** Replaces the backend's own Identity (see `registerKernels`). */
export const identityConfig: tf.KernelConfig = {
  kernelName: tf.Identity,
  backendName: 'wasm',
  kernelFunc: identity as unknown as tf.KernelFunc,
};
