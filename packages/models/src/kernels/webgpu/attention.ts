/**
 * `PeftkitAttention` on the WebGPU backend: softmax(q kᵀ · scale + bias) v in one dispatch, with grouped-query
 * heads and, optionally, attention dropout, for the forward pass. It replaces the chain BatchMatMul, Mul, Add,
 * Softmax (itself Max, Sub, Exp, Sum, Div), [PeftkitDropout,] BatchMatMul of the composed path
 * (../reference/attention.ts, the reference it is tested against) and never writes the [B, H, T, S] scores to
 * memory.
 *
 * Online softmax as FlashAttention (Dao et al. 2022, arXiv:2205.14135, algorithm 1): one workgroup per
 * (batch, head, block of {@link ROWS} query rows), one invocation per query row. The workgroup walks the keys in
 * tiles of `cols` keys (K and V tiles in workgroup memory, loaded once per workgroup); each invocation keeps its
 * query row, the running maximum m, the running sum l of exp(score − m) and the unnormalised output in
 * registers, rescaling l and the output once per tile by exp(m_old − m_new). Query head h reads key/value head
 * ⌊h / (H / KVH)⌋ (HF's `repeat_kv`), without copying keys.
 *
 * Dropout (attrs rate > 0): the mask of `PeftkitDropout` (../reference/philox.ts) over the [B, H, T, S]
 * probabilities, drawn here instead of stored: probability (b, h, t, s) has flat index
 * i = ((b·H + h)·T + t)·S + s and is kept iff word i % 4 of Philox4x32-10(counter [⌊i / 4⌋, 0, 0, 0], key
 * [seed0, seed1]) has (word >>> 8) ≥ ceil(rate · 2^24); kept ones are multiplied by fround(1 / fround(1 − rate)).
 * Only the output accumulation sees the mask; the normaliser l sums every exp(score − m), because dropout
 * applies after the softmax. So the output is seededDropout(softmax(scores), rate, seed0, seed1) · v, and the
 * statistics are those of the softmax without dropout, which the backward pass needs.
 *
 * Output, float32: [B, H, T, D] when `stats` is false; [B, H, T, D + 2] when it is true, columns D and D + 1
 * holding the row's maximum score m and log l, so that logsumexp = m + log l and the backward pass recomputes
 * the probabilities as exp((score − m) − log l). The two halves are kept apart because a fully masked row
 * (every score near −1e9) would lose log l entirely in a single float32 logsumexp (its spacing there is 64).
 */
import type * as tf from '@tensorflow/tfjs';
import { PEFTKIT_ATTENTION, type PeftkitAttentionAttrs } from '../attention.js';
import { dropoutScale, keepThreshold } from '../reference/philox.js';
import { PHILOX_WGSL } from './dropout.js';

/** The kernel's name, shared with ../attention.ts (its gradient and the fallback live there). */
export const ATTENTION_KERNEL = PEFTKIT_ATTENTION;

/** Attributes of {@link ATTENTION_KERNEL}: the scale of q·k, and whether to append the row statistics. */
export type AttentionAttrs = PeftkitAttentionAttrs;

/** Query rows per workgroup, one invocation each. */
export const ROWS = 64;

/** WebGPU's default `maxComputeWorkgroupStorageSize`, which every adapter (llvmpipe's included) offers. */
const WORKGROUP_BYTES = 16384;

/** Keys per tile: the K and V tiles (2 · cols · ⌈D/4⌉ vec4s) fit the default workgroup memory; at most 32. */
export function keysPerTile(headDim: number): number {
  const d4 = Math.ceil(headDim / 4);
  return Math.max(1, Math.min(32, Math.floor(WORKGROUP_BYTES / (2 * 16 * d4))));
}

/** tfjs-backend-webgpu's `WebGPUProgram` fields this kernel sets (the type is not exported from the package root). */
interface Program {
  outputShape: number[];
  shaderKey: string;
  dispatchLayout: { x: number[]; y: number[]; z: number[] };
  dispatch: [number, number, number];
  variableNames: string[];
  workgroupSize: [number, number, number];
  uniforms: string;
  getUserCode(): string;
}

/** The part of tfjs-backend-webgpu's `WebGPUBackend` used here. */
interface WebGpuBackendLike {
  runWebGPUProgram(program: Program, inputs: tf.TensorInfo[], dtype: tf.DataType, uniforms: { type: string; data: number[] }[]): tf.TensorInfo;
}

/** The shape facts the WGSL is specialised on (compile-time constants; the shader key names each). */
interface Spec {
  B: number;
  H: number;
  T: number;
  D: number;
  hasBias: boolean;
  stats: boolean;
  dropout: boolean;
}

function attentionProgram(s: Spec): Program {
  const d4 = Math.ceil(s.D / 4);
  const cols = keysPerTile(s.D);
  const width = s.stats ? s.D + 2 : s.D;
  // A vec4 of row `base`'s components 4·c .. 4·c + 3 of a [.., D] buffer, zero past D (D need not be a multiple of 4).
  const load4 = (buf: string) => `fn load4_${buf}(base : i32, c : i32) -> vec4<f32> {
  let i = base + 4 * c;
  var r = vec4<f32>(0.0);
  ${[0, 1, 2, 3].map((e) => `if (4 * c + ${e} < ${s.D}) { r[${e}] = ${buf}[i + ${e}]; }`).join('\n  ')}
  return r;
}`;
  return {
    outputShape: [s.B, s.H, s.T, width],
    shaderKey: `peftkit_attention_d${s.D}_${s.hasBias ? 'bias' : 'nobias'}_${s.stats ? 'stats' : 'plain'}${s.dropout ? '_dropout' : ''}`,
    // Non-flat on purpose: main() reads workgroupId directly, and tfjs then refuses (rather than folds) oversized dispatches.
    dispatchLayout: { x: [2], y: [1], z: [0] },
    dispatch: [Math.ceil(s.T / ROWS), s.H, s.B],
    variableNames: s.hasBias ? ['queries', 'keys', 'values', 'bias'] : ['queries', 'keys', 'values'],
    workgroupSize: [ROWS, 1, 1],
    uniforms:
      'heads : i32, seqQ : i32, seqK : i32, groupSize : i32, kvHeads : i32, scale : f32, biasBatchStride : i32, biasRowStride : i32,' +
      (s.dropout ? ' threshold : u32, seed0 : u32, seed1 : u32, dropScale : f32,' : ''),
    getUserCode: () => `
${s.dropout ? PHILOX_WGSL : ''}
const D4 = ${d4};
const COLS = ${cols};
var<workgroup> kTile : array<vec4<f32>, ${cols * d4}>;
var<workgroup> vTile : array<vec4<f32>, ${cols * d4}>;
${load4('queries')}
${load4('keys')}
${load4('values')}
fn main() {
  let b = i32(workgroupId.z);
  let h = i32(workgroupId.y);
  let lid = i32(localId.x);
  let t = i32(workgroupId.x) * ${ROWS} + lid;
  let T = uniforms.seqQ;
  let S = uniforms.seqK;
  let valid = t < T;
  let kvBase = (b * uniforms.kvHeads + h / uniforms.groupSize) * S * ${s.D};
  let row = (b * uniforms.heads + h) * T + t;
  var q : array<vec4<f32>, D4>;
  var acc : array<vec4<f32>, D4>;
  var sc : array<f32, COLS>;
  if (valid) {
    for (var c = 0; c < D4; c++) { q[c] = load4_queries(row * ${s.D}, c); }
  }
  // Finite start: exp(m_old − m_new) must be 0, not NaN, on the first tile.
  var m = -3.0e38;
  var l = 0.0;
  ${s.hasBias ? 'let biasBase = b * uniforms.biasBatchStride + t * uniforms.biasRowStride;' : ''}
  ${
    s.dropout
      ? `// The row's flat index in [B, H, T, S] (uint32, as the Philox counter), and the Philox block last drawn:
  // a block covers 4 consecutive probabilities, which may straddle tiles and rows, so it is keyed by its index.
  let rowFlat = u32(row) * u32(S);
  let key = vec2<u32>(uniforms.seed0, uniforms.seed1);
  var block = 0xffffffffu; // none yet: block indices stay below 2^30
  var words = vec4<u32>(0u);`
      : ''
  }
  for (var j0 = 0; j0 < S; j0 += COLS) {
    for (var i = lid; i < COLS * D4; i += ${ROWS}) {
      let j = j0 + i / D4;
      if (j < S) {
        kTile[i] = load4_keys(kvBase + j * ${s.D}, i % D4);
        vTile[i] = load4_values(kvBase + j * ${s.D}, i % D4);
      }
    }
    workgroupBarrier();
    if (valid) {
      let n = min(COLS, S - j0);
      var tileMax = m;
      for (var jj = 0; jj < n; jj++) {
        var dotqk = 0.0;
        for (var c = 0; c < D4; c++) { dotqk += dot(q[c], kTile[jj * D4 + c]); }
        // The composed path's rounding order: (q·k) · scale, then + bias.
        var score = dotqk * uniforms.scale;
        ${s.hasBias ? 'score += bias[biasBase + j0 + jj];' : ''}
        sc[jj] = score;
        tileMax = max(tileMax, score);
      }
      let corr = exp(m - tileMax);
      l = l * corr;
      for (var c = 0; c < D4; c++) { acc[c] = acc[c] * corr; }
      for (var jj = 0; jj < n; jj++) {
        let p = exp(sc[jj] - tileMax);
        l += p;
        ${
          s.dropout
            ? `let i = rowFlat + u32(j0 + jj);
        if ((i >> 2u) != block) {
          block = i >> 2u;
          words = philox4x32_10(vec4<u32>(block, 0u, 0u, 0u), key);
        }
        if ((words[i & 3u] >> 8u) >= uniforms.threshold) {
          let pd = p * uniforms.dropScale;
          for (var c = 0; c < D4; c++) { acc[c] += pd * vTile[jj * D4 + c]; }
        }`
            : 'for (var c = 0; c < D4; c++) { acc[c] += p * vTile[jj * D4 + c]; }'
        }
      }
      m = tileMax;
    }
    workgroupBarrier();
  }
  if (valid) {
    let dst = row * ${width};
    let inv = 1.0 / l;
    for (var c = 0; c < D4; c++) {
      let o = acc[c] * inv;
      ${[0, 1, 2, 3].map((e) => `if (4 * c + ${e} < ${s.D}) { result[dst + 4 * c + ${e}] = o[${e}]; }`).join('\n      ')}
    }
    ${s.stats ? `result[dst + ${s.D}] = m;\n    result[dst + ${s.D + 1}] = log(l);` : ''}
  }
}
`,
  };
}

/**
 * The kernel function.
 * Inputs: q [B, H, T, D], k and v [B, KVH, S, D], optional bias [1 or B, 1, 1 or T, S] (additive; 0 = visible).
 * Attrs: scale, stats, and the dropout of the probabilities (rate in [0, 1), 0 = none; seed0, seed1 uint32).
 * @returns float32 [B, H, T, D], or [B, H, T, D + 2] with (m, log l) per row when `stats`.
 * @throws Error when the shapes do not fit (H not a multiple of KVH, k/v or bias of another size); RangeError
 *   when rate is outside [0, 1) or a seed is not a uint32 (with rate > 0).
 */
export function attentionWebGpu({ inputs, attrs, backend }: { inputs: tf.NamedTensorInfoMap; attrs?: tf.NamedAttrMap; backend: unknown }): tf.TensorInfo {
  const { scale, stats, rate = 0, seed0 = 0, seed1 = 0 } = attrs as unknown as AttentionAttrs;
  if (!(rate >= 0 && rate < 1)) throw new RangeError(`${ATTENTION_KERNEL}: dropout rate must be in [0, 1), got ${rate}`);
  const dropout = rate > 0;
  if (dropout) for (const s of [seed0, seed1]) if (!(Number.isInteger(s) && s >= 0 && s <= 0xffffffff)) throw new RangeError(`${ATTENTION_KERNEL}: seeds must be uint32, got ${s}`);
  const { q, k, v } = inputs as Record<string, tf.TensorInfo>;
  const bias = (inputs as Record<string, tf.TensorInfo | undefined>).bias;
  const [B, H, T, D] = q.shape;
  const [kB, KVH, S, kD] = k.shape;
  if (kB !== B || kD !== D || v.shape.join() !== k.shape.join() || H % KVH !== 0) {
    throw new Error(`${ATTENTION_KERNEL}: q [${q.shape}] does not fit k [${k.shape}] and v [${v.shape}] (want [B, H, T, D] and [B, KVH, S, D], H a multiple of KVH)`);
  }
  let biasBatchStride = 0;
  let biasRowStride = 0;
  if (bias) {
    const [bb, bh, bt, bs] = bias.shape;
    if (bias.shape.length !== 4 || bh !== 1 || (bb !== 1 && bb !== B) || (bt !== 1 && bt !== T) || bs !== S) {
      throw new Error(`${ATTENTION_KERNEL}: bias [${bias.shape}] must be [1 or ${B}, 1, 1 or ${T}, ${S}]`);
    }
    biasRowStride = bt === 1 ? 0 : S;
    biasBatchStride = bb === 1 ? 0 : bt * S;
  }
  // The Philox counter is the flat index's block as a uint32 (as PeftkitDropout's); past 2^32 probabilities it would wrap.
  if (dropout && B * H * T * S > 2 ** 32) throw new RangeError(`${ATTENTION_KERNEL}: dropout over ${B * H * T * S} probabilities exceeds the uint32 index`);
  const program = attentionProgram({ B, H, T, D, hasBias: !!bias, stats: !!stats, dropout });
  const uniforms = [
    { type: 'int32', data: [H] },
    { type: 'int32', data: [T] },
    { type: 'int32', data: [S] },
    { type: 'int32', data: [H / KVH] },
    { type: 'int32', data: [KVH] },
    { type: 'float32', data: [scale] },
    { type: 'int32', data: [biasBatchStride] },
    { type: 'int32', data: [biasRowStride] },
  ];
  if (dropout) {
    uniforms.push({ type: 'uint32', data: [keepThreshold(rate)] }, { type: 'uint32', data: [seed0] }, { type: 'uint32', data: [seed1] }, { type: 'float32', data: [dropoutScale(rate)] });
  }
  return (backend as WebGpuBackendLike).runWebGPUProgram(program, bias ? [q, k, v, bias] : [q, k, v], 'float32', uniforms);
}

/** Registration of {@link attentionWebGpu} for the `webgpu` backend. */
export const attentionWebGpuConfig: tf.KernelConfig = {
  kernelName: ATTENTION_KERNEL,
  backendName: 'webgpu',
  kernelFunc: attentionWebGpu as unknown as tf.KernelFunc,
};
