/**
 * What peftkit's WASM kernels use of tfjs-backend-wasm's `BackendWasm` (not in tfjs's public types): tensors live in
 * the WASM heap, and a kernel reads and writes them through typed-array views of it.
 */
import type * as tf from '@tensorflow/tfjs';

/** The heap side of `BackendWasm`. Take views after every `makeOutput`: allocating may grow the memory and detach older views. */
export interface WasmHeapBackend {
  /** A new tensor's storage in the heap, uninitialised. */
  makeOutput(shape: number[], dtype: tf.DataType): tf.TensorInfo;
  /** A view of the tensor's data in the heap (no copy). */
  typedArrayFromHeap(t: tf.TensorInfo): tf.TypedArray;
  /** Frees a tensor made by `makeOutput` that the kernel does not return. */
  disposeData(dataId: tf.DataId): boolean;
}

/** A kernel function's argument as tfjs passes it. */
export interface WasmKernelArgs {
  inputs: tf.NamedTensorInfoMap;
  backend: unknown;
  attrs?: tf.NamedAttrMap;
}
