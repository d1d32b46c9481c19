/**
 * `PeftkitMatMul` on the WebGPU backend: the plain 2-D product a [M, K] · b [K, N] → [M, N] (no transpose flags,
 * no batch), which is every product `matMulLast` (../../nn/layers.ts) makes. Reference: tf.matMul on the cpu
 * backend (matmul.test.ts beside this file).
 *
 * Classic shared-memory tiling with a register block per invocation (as in Volkov & Demmel, "Benchmarking GPUs
 * to tune dense linear algebra", SC 2008, and CUTLASS's threadblock/thread tiles): a workgroup of 16 × 16
 * invocations computes a (16 · rows) × 64 tile of the output; each invocation `rows` (4 or 8) output rows × 4
 * adjacent columns, one vec4 accumulator per row. The workgroup walks K in steps of {@link TILE_K}, staging an
 * A tile [16 · rows, TILE_K] and a B tile [TILE_K, 64] in workgroup memory; per k each invocation reads rows/4
 * vec4s of A (broadcast within a row of invocations) and one vec4 of B and does rows × 4 multiply-adds.
 * Global loads are vec4 where the row length allows (K % 4 == 0 for A; N % 4 == 0 for B and the output),
 * scalar with bounds checks otherwise, so any M, K, N works.
 */
import type * as tf from '@tensorflow/tfjs';
import { PEFTKIT_MATMUL } from '../matmul.js';

/** The kernel's name, shared with ../matmul.ts (its gradient and the fallback live there). */
export const MATMUL_KERNEL = PEFTKIT_MATMUL;

/** K per staged tile. */
export const TILE_K = 16;

/** Invocations per workgroup side (16 × 16 = 256, WebGPU's default `maxComputeInvocationsPerWorkgroup`). */
const SIDE = 16;

/** Output rows per invocation: 8 once there are enough rows for the larger tile to keep the GPU busy. */
export function rowsPerInvocation(M: number): 4 | 8 {
  return M >= 1024 ? 8 : 4;
}

/** tfjs-backend-webgpu's `WebGPUProgram` fields this kernel sets (the type is not exported from the package root). */
interface Program {
  outputShape: number[];
  shaderKey: string;
  dispatchLayout: { x: number[]; y: number[] };
  dispatch: [number, number, number];
  variableNames: string[];
  variableComponents: number[];
  outputComponent: number;
  workgroupSize: [number, number, number];
  uniforms: string;
  getUserCode(): string;
}

/** The part of tfjs-backend-webgpu's `WebGPUBackend` used here. */
interface WebGpuBackendLike {
  runWebGPUProgram(program: Program, inputs: tf.TensorInfo[], dtype: tf.DataType, uniforms: { type: string; data: number[] }[]): tf.TensorInfo;
}

function matMulProgram(M: number, K: number, N: number): Program {
  const rows = rowsPerInvocation(M);
  const aVec = K % 4 === 0;
  const bVec = N % 4 === 0;
  const tileM = SIDE * rows;
  const tileN = SIDE * 4;
  const k4 = TILE_K / 4;
  // A vec4 of a[row, k .. k + 3] (zero outside the matrix).
  const loadA = aVec
    ? `fn loadA(row : i32, k : i32) -> vec4<f32> {
  if (row < uniforms.dimM && k < uniforms.dimK) { return A[(row * uniforms.dimK + k) / 4]; }
  return vec4<f32>(0.0);
}`
    : `fn loadA(row : i32, k : i32) -> vec4<f32> {
  var r = vec4<f32>(0.0);
  if (row < uniforms.dimM) {
    for (var e = 0; e < 4; e++) { if (k + e < uniforms.dimK) { r[e] = A[row * uniforms.dimK + k + e]; } }
  }
  return r;
}`;
  // A vec4 of b[k, col .. col + 3] (zero outside the matrix).
  const loadB = bVec
    ? `fn loadB(k : i32, col : i32) -> vec4<f32> {
  if (k < uniforms.dimK && col < uniforms.dimN) { return B[(k * uniforms.dimN + col) / 4]; }
  return vec4<f32>(0.0);
}`
    : `fn loadB(k : i32, col : i32) -> vec4<f32> {
  var r = vec4<f32>(0.0);
  if (k < uniforms.dimK) {
    for (var e = 0; e < 4; e++) { if (col + e < uniforms.dimN) { r[e] = B[k * uniforms.dimN + col + e]; } }
  }
  return r;
}`;
  const store = bVec
    ? `if (col < uniforms.dimN) { result[(row * uniforms.dimN + col) / 4] = acc[r]; }`
    : `for (var e = 0; e < 4; e++) { if (col + e < uniforms.dimN) { result[row * uniforms.dimN + col + e] = acc[r][e]; } }`;
  return {
    outputShape: [M, N],
    shaderKey: `peftkit_matmul_r${rows}_${aVec ? 'a4' : 'a1'}_${bVec ? 'b4' : 'b1'}`,
    // Non-flat: main() reads workgroupId/localId itself.
    dispatchLayout: { x: [1], y: [0] },
    dispatch: [Math.ceil(N / tileN), Math.ceil(M / tileM), 1],
    variableNames: ['A', 'B'],
    variableComponents: [aVec ? 4 : 1, bVec ? 4 : 1],
    outputComponent: bVec ? 4 : 1,
    workgroupSize: [SIDE, SIDE, 1],
    uniforms: 'dimM : i32, dimK : i32, dimN : i32,',
    getUserCode: () => `
const ROWS = ${rows};
var<workgroup> tileA : array<vec4<f32>, ${tileM * k4}>;  // [${tileM} rows][${k4} vec4 along K]
var<workgroup> tileB : array<vec4<f32>, ${TILE_K * SIDE}>; // [${TILE_K} k][${SIDE} vec4 along N]
${loadA}
${loadB}
fn main() {
  let tx = i32(localId.x);
  let ty = i32(localId.y);
  let lid = i32(localIndex);
  let m0 = i32(workgroupId.y) * ${tileM};
  let n0 = i32(workgroupId.x) * ${tileN};
  var acc : array<vec4<f32>, ROWS>;
  for (var k0 = 0; k0 < uniforms.dimK; k0 += ${TILE_K}) {
    for (var i = lid; i < ${tileM * k4}; i += ${SIDE * SIDE}) {
      tileA[i] = loadA(m0 + i / ${k4}, k0 + 4 * (i % ${k4}));
    }
    for (var i = lid; i < ${TILE_K * SIDE}; i += ${SIDE * SIDE}) {
      tileB[i] = loadB(k0 + i / ${SIDE}, n0 + 4 * (i % ${SIDE}));
    }
    workgroupBarrier();
    for (var kk = 0; kk < ${k4}; kk++) {
      var a : array<vec4<f32>, ROWS>;
      for (var r = 0; r < ROWS; r++) { a[r] = tileA[(ty * ROWS + r) * ${k4} + kk]; }
      for (var e = 0; e < 4; e++) {
        let b = tileB[(kk * 4 + e) * ${SIDE} + tx];
        for (var r = 0; r < ROWS; r++) { acc[r] = fma(vec4<f32>(a[r][e]), b, acc[r]); }
      }
    }
    workgroupBarrier();
  }
  let col = n0 + tx * 4;
  for (var r = 0; r < ROWS; r++) {
    let row = m0 + ty * ROWS + r;
    if (row < uniforms.dimM) {
      ${store}
    }
  }
}
`,
  };
}

/**
 * The kernel function: a [M, K] · b [K, N] → [M, N], float32.
 * @throws Error when a or b is not 2-D or the inner sizes differ.
 */
export function matMulWebGpu({ inputs, backend }: { inputs: tf.NamedTensorInfoMap; backend: unknown }): tf.TensorInfo {
  const { a, b } = inputs as Record<string, tf.TensorInfo>;
  if (a.shape.length !== 2 || b.shape.length !== 2 || a.shape[1] !== b.shape[0]) {
    throw new Error(`${MATMUL_KERNEL}: want a [M, K] and b [K, N], got [${a.shape}] and [${b.shape}]`);
  }
  const [M, K] = a.shape;
  const N = b.shape[1];
  const uniforms = [
    { type: 'int32', data: [M] },
    { type: 'int32', data: [K] },
    { type: 'int32', data: [N] },
  ];
  return (backend as WebGpuBackendLike).runWebGPUProgram(matMulProgram(M, K, N), [a, b], 'float32', uniforms);
}

/** Registration of {@link matMulWebGpu} for the `webgpu` backend. */
export const matMulWebGpuConfig: tf.KernelConfig = {
  kernelName: MATMUL_KERNEL,
  backendName: 'webgpu',
  kernelFunc: matMulWebGpu as unknown as tf.KernelFunc,
};
