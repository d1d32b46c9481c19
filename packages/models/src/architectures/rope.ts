/**
 * Rotary position embeddings' frequencies (Su et al. 2021) as transformers computes them
 * (modeling_rope_utils.py, `ROPE_INIT_FUNCTIONS`): the rope types `default`, `linear`, `dynamic`
 * (NTK-aware), `yarn` (Peng et al. 2023, arXiv:2309.00071), `longrope` (Ding et al. 2024,
 * arXiv:2402.13753) and `llama3`.
 *
 * transformers 4 wrote the base as a top-level `rope_theta` and the scaling as `rope_scaling`
 * (`{"type" | "rope_type", "factor", ...}`); transformers 5 writes both inside `rope_parameters`
 * (`{"rope_type", "rope_theta", "factor", ...}`) and no top-level `rope_theta`.
 * {@link resolveRopeParameters} reads either form into the second.
 */
import * as tf from '@tensorflow/tfjs';
import { UserError } from '@peftkit/core';
import type { ModelConfig } from '../model.js';

/** The rope types {@link resolveRopeParameters} accepts. */
export const ROPE_TYPES = ['default', 'linear', 'dynamic', 'yarn', 'longrope', 'llama3'] as const;
export type RopeType = (typeof ROPE_TYPES)[number];

/** transformers 5's `rope_parameters` for one attention type, with the fields each rope type reads. */
export interface RopeParameters {
  rope_type: RopeType;
  /** Base θ of the frequencies θ^(-2i/d). */
  rope_theta: number;
  /** Context extension factor (linear, dynamic, yarn, longrope, llama3). */
  factor?: number;
  /** Context length the model was pretrained with (yarn, longrope, llama3). */
  original_max_position_embeddings?: number;
  /** Scale of cos and sin (yarn, longrope); absent: derived from `factor` as transformers does. */
  attention_factor?: number;
  beta_fast?: number;
  beta_slow?: number;
  mscale?: number;
  mscale_all_dim?: number;
  truncate?: boolean;
  long_factor?: number[];
  short_factor?: number[];
  low_freq_factor?: number;
  high_freq_factor?: number;
  [key: string]: unknown;
}

/** What the rotary embedding needs at a given sequence length. */
export interface RopeFrequencies {
  /** θ_i for i < head_dim / 2, radians per position. */
  invFreq: Float32Array;
  /** Multiplies cos and sin (transformers' `attention_scaling`; 1 except for yarn and longrope). */
  attentionScaling: number;
}

const isObject = (v: unknown): v is Record<string, unknown> => !!v && typeof v === 'object' && !Array.isArray(v);

/**
 * The RoPE settings of a Llama-family `config.json`, in transformers 5's form, as
 * `PretrainedConfig.standardize_rope_params` reads them: `rope_parameters` when present, else the
 * transformers 4 fields (`rope_scaling`, whose `type` is the old name of `rope_type`, and the
 * top-level `rope_theta`). A missing θ is `defaultTheta`, a missing type `default`.
 * @param defaultTheta - the architecture's default base (10000 for Llama).
 * @throws UserError naming the file and field (JSON pointer) for an unknown rope type (listing the
 *   supported ones), per-layer-type parameters, a partial rotary factor, or a missing or invalid
 *   field of the type.
 */
export function resolveRopeParameters(config: ModelConfig, file = 'config.json', defaultTheta = 10000): RopeParameters {
  const fromV5 = config.rope_parameters != null;
  const field = fromV5 ? 'rope_parameters' : 'rope_scaling';
  const raw = fromV5 ? config.rope_parameters : config.rope_scaling;
  if (raw != null && !isObject(raw)) throw new UserError(`${file}: /${field} must be an object or null`, { file, pointer: `/${field}` });
  const p: Record<string, unknown> = { ...(raw ?? {}) };
  const fail = (key: string, message: string, hint?: string): never => {
    throw new UserError(`${file}: /${field}/${key} ${message}`, { file, pointer: `/${field}/${key}`, hint });
  };
  if (fromV5 && p.rope_type === undefined && p.rope_theta === undefined && Object.values(p).some(isObject)) {
    const kinds = Object.keys(p).join(', ');
    throw new UserError(`${file}: /rope_parameters holds parameters per layer type (${kinds}), which ${String(config.model_type)} does not have`, { file, pointer: '/rope_parameters', hint: 'give one set: {"rope_type": ..., "rope_theta": ...}' });
  }
  if (p.type !== undefined && p.rope_type === undefined) p.rope_type = p.type; // transformers < 4.45 wrote "type"
  delete p.type;
  p.rope_type ??= 'default';
  p.rope_theta ??= config.rope_theta ?? defaultTheta;
  const type = p.rope_type as string;
  if (!(ROPE_TYPES as readonly string[]).includes(type)) {
    fail('rope_type', `is "${type}", which peftkit does not support; supported rope types: ${ROPE_TYPES.join(', ')}`, 'use a checkpoint with one of those, or convert it');
  }
  const positive = (key: string) => {
    if (typeof p[key] !== 'number' || !((p[key] as number) > 0)) fail(key, `must be a positive number for rope type "${type}" (got ${JSON.stringify(p[key])})`);
  };
  positive('rope_theta');
  if (p.partial_rotary_factor != null && p.partial_rotary_factor !== 1) fail('partial_rotary_factor', `is ${JSON.stringify(p.partial_rotary_factor)}; ${String(config.model_type)} rotates the whole head (1.0)`);
  const maxPos = config.max_position_embeddings as number | undefined;
  if (type === 'yarn' || type === 'longrope') {
    // Phi-3-style configs keep the pretrained length at the top level.
    p.original_max_position_embeddings ??= config.original_max_position_embeddings ?? maxPos;
    positive('original_max_position_embeddings');
    // transformers: with no factor, the ratio of the extended and the pretrained lengths.
    if (p.factor == null && typeof maxPos === 'number') p.factor = maxPos / (p.original_max_position_embeddings as number);
  }
  if (type !== 'default') positive('factor');
  if (type === 'llama3') for (const k of ['low_freq_factor', 'high_freq_factor', 'original_max_position_embeddings']) positive(k);
  if (type === 'longrope') {
    for (const k of ['long_factor', 'short_factor']) {
      if (!Array.isArray(p[k]) || !(p[k] as unknown[]).every((x) => typeof x === 'number' && x > 0)) fail(k, 'must be a list of positive numbers, one per rotary frequency (head_dim / 2)');
    }
  }
  if (p.attention_factor != null && !(typeof p.attention_factor === 'number' && p.attention_factor > 0)) fail('attention_factor', 'must be a positive number or absent');
  return p as RopeParameters;
}

/** θ^(-2i/d) for i < d/2 (transformers' `_compute_default_rope_parameters`), in float64. */
function defaultInvFreq(theta: number, dim: number): number[] {
  return Array.from({ length: dim / 2 }, (_, i) => 1 / Math.pow(theta, (2 * i) / dim));
}

/**
 * The inverse frequencies and the cos/sin scale of RoPE for `headDim`, as transformers'
 * `ROPE_INIT_FUNCTIONS[rope_type]` with `dynamic_rope_update`:
 * - `linear`: θ_i / factor.
 * - `dynamic`: for a sequence longer than `maxPositionEmbeddings`, the base becomes
 *   θ · (factor · L / max − (factor − 1))^(d / (d − 2)), L = `seqLen`; else as `default`.
 * - `yarn`: a ramp between interpolated (θ_i / factor) and original frequencies over the dimensions
 *   between the correction range of `beta_fast` and `beta_slow` rotations; cos and sin scaled by
 *   `attention_factor` (default 0.1 · mscale · ln(factor) + 1, or the ratio of the mscale and
 *   mscale_all_dim forms).
 * - `longrope`: θ_i / long_factor_i when `seqLen` > original_max_position_embeddings, else
 *   θ_i / short_factor_i; cos and sin scaled by √(1 + ln(factor) / ln(original)) (1 when factor ≤ 1).
 * - `llama3`: low frequencies (wavelength > original / low_freq_factor) divided by factor, high
 *   ones (wavelength < original / high_freq_factor) kept, a smooth mix between.
 * @param seqLen - the largest position + 1 of the current forward pass (dynamic, longrope only).
 * @throws UserError when longrope's factor lists do not have head_dim / 2 entries.
 */
export function ropeFrequencies(p: RopeParameters, headDim: number, maxPositionEmbeddings: number, seqLen = 0, file = 'config.json'): RopeFrequencies {
  const d = headDim;
  const base = defaultInvFreq(p.rope_theta, d);
  const out = (f: number[], attentionScaling = 1): RopeFrequencies => ({ invFreq: Float32Array.from(f), attentionScaling });
  const factor = p.factor as number;
  switch (p.rope_type) {
    case 'default':
      return out(base);
    case 'linear':
      return out(base.map((f) => f / factor));
    case 'dynamic': {
      const L = Math.max(seqLen, maxPositionEmbeddings);
      const theta = p.rope_theta * Math.pow((factor * L) / maxPositionEmbeddings - (factor - 1), d / (d - 2));
      return out(defaultInvFreq(theta, d));
    }
    case 'yarn': {
      const orig = p.original_max_position_embeddings as number;
      const mscale = (scale: number, m = 1) => (scale <= 1 ? 1 : 0.1 * m * Math.log(scale) + 1);
      const attention = p.attention_factor ?? (p.mscale && p.mscale_all_dim ? mscale(factor, p.mscale) / mscale(factor, p.mscale_all_dim) : mscale(factor));
      const betaFast = p.beta_fast || 32;
      const betaSlow = p.beta_slow || 1;
      const correctionDim = (rotations: number) => (d * Math.log(orig / (rotations * 2 * Math.PI))) / (2 * Math.log(p.rope_theta));
      let low = correctionDim(betaFast);
      let high = correctionDim(betaSlow);
      if (p.truncate ?? true) {
        low = Math.floor(low);
        high = Math.ceil(high);
      }
      low = Math.max(low, 0);
      high = Math.min(high, d - 1);
      if (low === high) high += 0.001; // transformers: avoids a division by zero
      return out(
        base.map((f, i) => {
          const extrapolation = 1 - Math.min(1, Math.max(0, (i - low) / (high - low)));
          return (f / factor) * (1 - extrapolation) + f * extrapolation;
        }),
        attention,
      );
    }
    case 'longrope': {
      const orig = p.original_max_position_embeddings as number;
      const ext = seqLen > orig ? p.long_factor! : p.short_factor!;
      if (ext.length !== d / 2) {
        const key = seqLen > orig ? 'long_factor' : 'short_factor';
        throw new UserError(`${file}: /rope_parameters/${key} has ${ext.length} entries; head_dim ${d} needs ${d / 2}`, { file, pointer: `/rope_parameters/${key}` });
      }
      const attention = p.attention_factor ?? (factor <= 1 ? 1 : Math.sqrt(1 + Math.log(factor) / Math.log(orig)));
      return out(base.map((f, i) => f / ext[i]), attention);
    }
    case 'llama3': {
      const { low_freq_factor: lowF, high_freq_factor: highF } = p as Required<RopeParameters>;
      const oldLen = p.original_max_position_embeddings as number;
      const lowWavelen = oldLen / lowF;
      const highWavelen = oldLen / highF;
      return out(
        base.map((f) => {
          const wavelen = (2 * Math.PI) / f;
          if (wavelen > lowWavelen) return f / factor;
          if (wavelen < highWavelen) return f;
          const smooth = (oldLen / wavelen - lowF) / (highF - lowF);
          return (1 - smooth) * (f / factor) + smooth * f;
        }),
      );
    }
  }
}

/** Whether the frequencies depend on the sequence length (so the forward pass must know it). */
export function ropeDependsOnLength(p: RopeParameters): boolean {
  return p.rope_type === 'dynamic' || p.rope_type === 'longrope';
}

/**
 * The inverse frequencies of {@link ropeFrequencies} at seqLen = max(positionIds) + 1 (transformers'
 * `dynamic_rope_update`), computed with tensor ops where the positions live, without reading them back (WebGPU
 * in Node cannot read synchronously, and a read would stall the queue on any GPU):
 * - `dynamic`: θ'^(−2i/d) with θ' = θ · g^(d/(d−2)), i.e. θ^(−2i/d) · g^(−2i/(d−2)), with
 *   g = 1 + factor · (L − max) / max and L = max(seqLen, max): the same g as ropeFrequencies'
 *   factor · L / max − (factor − 1), written so that g is exactly 1 (the `default` frequencies, bit for bit)
 *   up to max positions. In float32, as transformers computes it; within a few ulp of the float64 host values.
 * - `longrope`: the long factors' table when seqLen > original_max_position_embeddings, else the short ones'
 *   (both from ropeFrequencies, so exactly its values); the attention scaling is the same for both.
 * Other rope types do not depend on the length: their table is returned as is.
 * @param p - resolved rope parameters ({@link resolveRopeParameters})
 * @param headDim - d, even
 * @param maxPositionEmbeddings - the config's max_position_embeddings
 * @param positionIds - [B or 1, T] positions (int32 or float32)
 * @returns [d / 2] float32, radians per position (the caller disposes it)
 * @throws UserError when longrope's factor lists do not have head_dim / 2 entries.
 */
export function ropeInvFreqForPositions(p: RopeParameters, headDim: number, maxPositionEmbeddings: number, positionIds: tf.Tensor, file = 'config.json'): tf.Tensor1D {
  const d = headDim;
  if (p.rope_type === 'dynamic') {
    const base = ropeFrequencies(p, d, maxPositionEmbeddings, 0, file).invFreq; // L = max: θ unchanged
    // −2i/(d−2); 0 for i = 0, whose frequency is 1 at any θ (and d = 2 would divide 0 by 0).
    const exponents = Float32Array.from({ length: d / 2 }, (_, i) => (i === 0 ? 0 : (-2 * i) / (d - 2)));
    const factor = p.factor as number;
    return tf.tidy(() => {
      const seqLen = tf.add(tf.max(positionIds).cast('float32'), 1);
      const excess = tf.relu(tf.sub(seqLen, maxPositionEmbeddings)); // L − max, L = max(seqLen, max)
      const g = tf.add(1, tf.mul(excess, factor / maxPositionEmbeddings));
      return tf.mul(tf.tensor1d(base), tf.exp(tf.mul(tf.tensor1d(exponents), tf.log(g)))) as tf.Tensor1D;
    });
  }
  if (p.rope_type === 'longrope') {
    const orig = p.original_max_position_embeddings as number;
    const short = ropeFrequencies(p, d, maxPositionEmbeddings, 0, file).invFreq;
    const long = ropeFrequencies(p, d, maxPositionEmbeddings, orig + 1, file).invFreq;
    return tf.tidy(() => {
      const isLong = tf.greaterEqual(tf.max(positionIds).cast('float32'), orig).reshape([1]); // seqLen = max + 1 > orig
      return tf.where(tf.broadcastTo(isLong, [d / 2]), tf.tensor1d(long), tf.tensor1d(short)) as tf.Tensor1D;
    });
  }
  return tf.tensor1d(ropeFrequencies(p, d, maxPositionEmbeddings, 0, file).invFreq);
}
