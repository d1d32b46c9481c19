/**
 * `PeftkitDropout` on the WebGPU backend: inverted dropout whose mask is drawn on the device by Philox4x32-10 from
 * a counter, never stored and never uploaded (tfjs's `tf.dropout` fills the mask in JavaScript and uploads it:
 * 3.6 s of a 5.6 s GPT-2-small step on an H200, ../shared/reference/stack-notes.md). The contract and the truth
 * it is tested against: ../reference/philox.ts (Salmon et al., "Parallel random numbers: as easy as 1, 2, 3",
 * SC 2011; Random123's constants).
 *
 * One invocation computes one Philox block (4 words) and writes the 4 elements it covers: element i uses word
 * i % 4 of block floor(i / 4) under key [seed0, seed1]; keep iff (word >>> 8) >= ceil(rate · 2^24), which is
 * `u >= rate` for u = (word >>> 8) · 2^-24; kept elements are multiplied by fround(1 / fround(1 − rate)).
 */
import * as tf from '@tensorflow/tfjs';
import { dropoutScale, keepThreshold, PHILOX_M0, PHILOX_M1, PHILOX_W0, PHILOX_W1 } from '../reference/philox.js';
import { PEFTKIT_DROPOUT, type PeftkitDropoutAttrs } from '../dropout.js';

/**
 * The kernel's name, shared by every backend (../dropout.ts). Its gradient (the same kernel on dy) is registered
 * once, backend-neutral, from ../dropout.ts by ../index.ts.
 */
export const DROPOUT_KERNEL = PEFTKIT_DROPOUT;

/** Attributes of {@link DROPOUT_KERNEL}: drop probability in [0, 1) and the two uint32 key words. */
export type DropoutAttrs = PeftkitDropoutAttrs;

const hex = (n: number) => `0x${(n >>> 0).toString(16)}u`;

/** WGSL of Philox4x32-10; the 32×32→64-bit product is built from 16-bit halves (WGSL has no 64-bit integers). */
export const PHILOX_WGSL = `
fn mulhilo(a : u32, b : u32) -> vec2<u32> {
  let al = a & 0xffffu;
  let ah = a >> 16u;
  let bl = b & 0xffffu;
  let bh = b >> 16u;
  let ll = al * bl;
  let lh = al * bh;
  let hl = ah * bl;
  let mid = (ll >> 16u) + (lh & 0xffffu) + (hl & 0xffffu);
  return vec2<u32>(ah * bh + (lh >> 16u) + (hl >> 16u) + (mid >> 16u), a * b);
}
fn philox4x32_10(counter : vec4<u32>, key : vec2<u32>) -> vec4<u32> {
  var c = counter;
  var k = key;
  for (var r = 0u; r < 10u; r++) {
    if (r > 0u) {
      k = k + vec2<u32>(${hex(PHILOX_W0)}, ${hex(PHILOX_W1)});
    }
    let p0 = mulhilo(${hex(PHILOX_M0)}, c.x);
    let p1 = mulhilo(${hex(PHILOX_M1)}, c.z);
    c = vec4<u32>(p1.x ^ c.y ^ k.x, p1.y, p0.x ^ c.w ^ k.y, p0.y);
  }
  return c;
}
`;

/** tfjs-backend-webgpu's `WebGPUProgram` fields this kernel sets (its type is not exported from the package root). */
interface Program {
  outputShape: number[];
  shaderKey: string;
  dispatchLayout: { x: number[] };
  dispatch: [number, number, number];
  variableNames: string[];
  workgroupSize: [number, number, number];
  size: boolean;
  uniforms: string;
  getUserCode(): string;
}

/** The part of tfjs-backend-webgpu's `WebGPUBackend` used here. */
interface WebGpuBackendLike {
  runWebGPUProgram(program: Program, inputs: tf.TensorInfo[], dtype: tf.DataType, uniforms: { type: string; data: number[] }[]): tf.TensorInfo;
}

const WORKGROUP = 64;

/** Elementwise dropout of `shape`, 4 elements per invocation. */
function dropoutProgram(shape: number[]): Program {
  const size = shape.reduce((a, b) => a * b, 1);
  const blocks = Math.ceil(size / 4);
  const groups = Math.ceil(blocks / WORKGROUP);
  return {
    outputShape: shape,
    shaderKey: 'peftkit_dropout',
    dispatchLayout: { x: shape.map((_, i) => i) },
    // 1-D; tfjs's runWebGPUProgram folds it into 2-D past 65535 workgroups and getGlobalIndex() unfolds it.
    dispatch: [groups, 1, 1],
    variableNames: ['x'],
    workgroupSize: [WORKGROUP, 1, 1],
    size: true,
    uniforms: 'threshold : u32, seed0 : u32, seed1 : u32, scale : f32,',
    getUserCode: () => `
${PHILOX_WGSL}
fn main(block : i32) {
  let first = block * 4;
  if (first >= uniforms.size) {
    return;
  }
  let w = philox4x32_10(vec4<u32>(u32(block), 0u, 0u, 0u), vec2<u32>(uniforms.seed0, uniforms.seed1));
  for (var j = 0; j < 4; j++) {
    let i = first + j;
    if (i < uniforms.size) {
      let keep = (w[j] >> 8u) >= uniforms.threshold;
      setOutputAtIndex(i, select(0.0, x[i] * uniforms.scale, keep));
    }
  }
}
`,
  };
}

/**
 * The kernel function: y = keep ? x · fround(1 / fround(1 − rate)) : 0, same shape as x (float32).
 * @throws RangeError when rate is outside [0, 1) or a seed is not a uint32.
 */
export function dropoutWebGpu({ inputs, attrs, backend }: { inputs: tf.NamedTensorInfoMap; attrs?: tf.NamedAttrMap; backend: unknown }): tf.TensorInfo {
  const { rate, seed0, seed1 } = attrs as unknown as DropoutAttrs;
  if (!(rate >= 0 && rate < 1)) throw new RangeError(`PeftkitDropout: rate must be in [0, 1), got ${rate}`);
  for (const s of [seed0, seed1]) if (!(Number.isInteger(s) && s >= 0 && s <= 0xffffffff)) throw new RangeError(`PeftkitDropout: seeds must be uint32, got ${s}`);
  const x = inputs.x as tf.TensorInfo;
  const uniforms = [
    { type: 'uint32', data: [keepThreshold(rate)] },
    { type: 'uint32', data: [seed0] },
    { type: 'uint32', data: [seed1] },
    { type: 'float32', data: [dropoutScale(rate)] },
  ];
  return (backend as WebGpuBackendLike).runWebGPUProgram(dropoutProgram(x.shape), [x], 'float32', uniforms);
}

/** Registration of {@link dropoutWebGpu} for the `webgpu` backend. */
export const dropoutWebGpuConfig: tf.KernelConfig = {
  kernelName: DROPOUT_KERNEL,
  backendName: 'webgpu',
  kernelFunc: dropoutWebGpu as unknown as tf.KernelFunc,
};
