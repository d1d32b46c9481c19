/**
 * `PeftkitDropout` for tfjs's plain CPU backend (contract: kernels/reference/philox.ts): the
 * Philox loop over the backend's float32 arrays.
 */
import * as tf from '@tensorflow/tfjs';
import { PEFTKIT_DROPOUT, type PeftkitDropoutAttrs } from '../dropout.js';
import { philoxDropoutInto } from './philox-dropout.js';

/** The part of tfjs-backend-cpu's `MathBackendCPU` this kernel uses. */
interface CpuBackend {
  data: { get(id: tf.DataId): { values: tf.TypedArray } };
  makeTensorInfo(shape: number[], dtype: tf.DataType, values: tf.TypedArray): tf.TensorInfo;
}

function dropoutCpu(args: { inputs: tf.NamedTensorInfoMap; backend: unknown; attrs?: tf.NamedAttrMap }): tf.TensorInfo {
  const { x } = args.inputs as { x: tf.TensorInfo };
  const { rate, seed0, seed1 } = args.attrs as unknown as PeftkitDropoutAttrs;
  const backend = args.backend as CpuBackend;
  const n = tf.util.sizeFromShape(x.shape);
  const y = new Float32Array(n);
  philoxDropoutInto(backend.data.get(x.dataId).values, y, n, rate, seed0, seed1);
  return backend.makeTensorInfo(x.shape, 'float32', y);
}

/** The kernel config, registered by `registerKernels` (kernels/index.ts). */
export const dropoutCpuConfig: tf.KernelConfig = {
  kernelName: PEFTKIT_DROPOUT,
  backendName: 'cpu',
  kernelFunc: dropoutCpu as unknown as tf.KernelFunc,
};
