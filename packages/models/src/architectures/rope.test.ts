/**
 * RoPE settings in transformers 4's and 5's forms, each rope type's frequencies against values
 * worked out by hand from transformers' formulas (modeling_rope_utils.py), and a transformers 5
 * Qwen2 checkpoint with θ = 1e6 against the logits transformers computed for it.
 */
import assert from 'node:assert/strict';
import { before, test } from 'node:test';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { UserError, initBackend } from '@peftkit/core';
import { llamaConfig, loadPretrained, resolveRopeParameters, ropeFrequencies, ropeInvFreqForPositions, type RopeParameters } from '../index.js';
import { hfGolden } from '../testing/index.js';

before(async () => {
  await initBackend('wasm');
});

const llama = { model_type: 'llama', hidden_size: 32, num_attention_heads: 4, max_position_embeddings: 16 }; // head_dim 8
const close = (got: ArrayLike<number>, want: number[], rel = 1e-6) => {
  assert.equal(got.length, want.length);
  want.forEach((w, i) => assert.ok(Math.abs(got[i] - w) <= rel * Math.abs(w), `[${i}]: ${got[i]} vs ${w}`));
};

test('transformers 5 rope_parameters and transformers 4 rope_theta / rope_scaling give the same settings', () => {
  const v5 = llamaConfig({ ...llama, rope_parameters: { rope_type: 'default', rope_theta: 1e6 } });
  const v4 = llamaConfig({ ...llama, rope_theta: 1e6 });
  assert.deepEqual(v5.rope_parameters, { rope_type: 'default', rope_theta: 1e6 });
  assert.deepEqual(v4.rope_parameters, v5.rope_parameters);
  assert.ok(!('rope_theta' in v4) && !('rope_scaling' in v4), 'the resolved config keeps transformers 5 form only');
  // Old files say "type"; a missing θ is Llama's 10000; rope_parameters wins over the old fields.
  assert.deepEqual(resolveRopeParameters({ ...llama, rope_scaling: { type: 'linear', factor: 2 } }), { rope_type: 'linear', rope_theta: 10000, factor: 2 });
  assert.deepEqual(resolveRopeParameters({ ...llama, rope_theta: 5, rope_parameters: { rope_type: 'default', rope_theta: 7 } }).rope_theta, 7);
  // Scaled types read the same from either form (transformers 5 moves rope_scaling's fields into rope_parameters).
  const l3 = { factor: 8, low_freq_factor: 1, high_freq_factor: 4, original_max_position_embeddings: 16 };
  const l3v4 = llamaConfig({ ...llama, rope_theta: 5e5, rope_scaling: { rope_type: 'llama3', ...l3 } });
  const l3v5 = llamaConfig({ ...llama, rope_parameters: { rope_type: 'llama3', rope_theta: 5e5, ...l3 } });
  assert.deepEqual(l3v4.rope_parameters, l3v5.rope_parameters);
  assert.equal(l3v5.rope_parameters.factor, 8);
  // θ = 1e6, d = 8: θ^(-2i/8) = 1, 1e-1.5, 1e-3, 1e-4.5.
  close(ropeFrequencies(v5.rope_parameters, 8, 16).invFreq, [1, 10 ** -1.5, 1e-3, 10 ** -4.5]);
});

test('an unknown rope type, per-layer parameters or a missing field is refused naming the field', () => {
  const refused = (config: Record<string, unknown>, re: RegExp, pointer: string) =>
    assert.throws(() => llamaConfig({ ...llama, ...config }, 'm/config.json'), (e: Error) => e instanceof UserError && re.test(e.message) && e.details.pointer === pointer && e.message.startsWith('m/config.json'));
  refused({ rope_parameters: { rope_type: 'mrope', rope_theta: 1e4 } }, /rope_type is "mrope", which peftkit does not support; supported rope types: default, linear, dynamic, yarn, longrope, llama3/, '/rope_parameters/rope_type');
  refused({ rope_parameters: { full_attention: { rope_type: 'default' }, sliding_attention: { rope_type: 'default' } } }, /per layer type \(full_attention, sliding_attention\)/, '/rope_parameters');
  refused({ rope_parameters: { rope_type: 'llama3', rope_theta: 1e4, factor: 8, high_freq_factor: 4, original_max_position_embeddings: 16 } }, /low_freq_factor must be a positive number/, '/rope_parameters/low_freq_factor');
  refused({ rope_scaling: { rope_type: 'linear' } }, /factor must be a positive number/, '/rope_scaling/factor');
  refused({ rope_parameters: { rope_type: 'default', rope_theta: 1e4, partial_rotary_factor: 0.5 } }, /rotates the whole head/, '/rope_parameters/partial_rotary_factor');
  refused({ rope_parameters: { rope_type: 'longrope', rope_theta: 1e4, long_factor: [1, 2], short_factor: [1, 1] } }, /short_factor has 2 entries; head_dim 8 needs 4/, '/rope_parameters/short_factor');
});

test('dynamic NTK: the base grows only past max_position_embeddings', () => {
  const p: RopeParameters = { rope_type: 'dynamic', rope_theta: 10000, factor: 2 };
  // d = 4, max 16: up to 16 positions θ is kept: 1, 10000^-0.5.
  close(ropeFrequencies(p, 4, 16, 16).invFreq, [1, 0.01]);
  // 32 positions: θ' = 10000 · (2·32/16 − 1)^(4/2) = 90000, so 90000^-0.5 = 1/300.
  close(ropeFrequencies(p, 4, 16, 32).invFreq, [1, 1 / 300]);
});

test('dynamic and longrope on the device (no read back) give the host frequencies at max(position) + 1', async () => {
  const dyn: RopeParameters = { rope_type: 'dynamic', rope_theta: 10000, factor: 2 };
  const lr: RopeParameters = { rope_type: 'longrope', rope_theta: 1e4, factor: 4, original_max_position_embeddings: 16, short_factor: [1, 2, 4, 8], long_factor: [2, 4, 8, 16] };
  // [B, T] positions whose largest entry (L − 1) is not in the last place, and a [1, T] row.
  const positions = (last: number) => tf.tensor2d([[0, 1, 2, last], [last - 3, last - 2, last - 1, 0]], [2, 4], 'int32');
  for (const [p, d, maxPos] of [[dyn, 8, 16], [dyn, 4, 16], [lr, 8, 64]] as const) {
    for (const L of [4, 15, 16, 17, 32, 100]) {
      const pos = positions(L - 1);
      const got = ropeInvFreqForPositions(p, d, maxPos, pos);
      const want = ropeFrequencies(p, d, maxPos, L).invFreq;
      close(await got.data(), Array.from(want), 1e-6);
      // Up to the pretrained length: the table itself, bit for bit.
      if (L <= (p.rope_type === 'dynamic' ? maxPos : 16)) assert.deepEqual(Array.from(await got.data()), Array.from(want), `${p.rope_type} L ${L}`);
      tf.dispose([pos, got]);
    }
  }
  // The grown base differs from the default past max positions (the case above would pass if nothing grew).
  assert.ok(Math.abs(ropeFrequencies(dyn, 8, 16, 32).invFreq[1] - ropeFrequencies(dyn, 8, 16, 16).invFreq[1]) > 1e-3);
});

test('yarn: ramp between interpolated and original frequencies, cos/sin scaled', () => {
  // d = 8, θ = 1e4, original length 16, factor 4. Correction dims: 8·ln(16/(32·2π))/(2 ln 1e4) = −1.10 → floor → 0;
  // 8·ln(16/(1·2π))/(2 ln 1e4) = 0.41 → ceil → 1. Ramp over i = 0..3: 0, 1, 1, 1, so dimension 0 keeps
  // its frequency and the others are divided by 4. Attention factor 0.1·ln 4 + 1.
  const f = ropeFrequencies({ rope_type: 'yarn', rope_theta: 1e4, factor: 4, original_max_position_embeddings: 16 }, 8, 64);
  close(f.invFreq, [1, 0.1 / 4, 0.01 / 4, 0.001 / 4]);
  assert.ok(Math.abs(f.attentionScaling - (0.1 * Math.log(4) + 1)) < 1e-12);
  // mscale / mscale_all_dim (DeepSeek form): (0.1·2·ln 4 + 1) / (0.1·1·ln 4 + 1).
  const g = ropeFrequencies({ rope_type: 'yarn', rope_theta: 1e4, factor: 4, original_max_position_embeddings: 16, mscale: 2, mscale_all_dim: 1 }, 8, 64);
  assert.ok(Math.abs(g.attentionScaling - (0.1 * 2 * Math.log(4) + 1) / (0.1 * Math.log(4) + 1)) < 1e-12);
  // Without a factor: max_position_embeddings / original = 64 / 16.
  assert.equal(resolveRopeParameters({ ...llama, max_position_embeddings: 64, rope_parameters: { rope_type: 'yarn', rope_theta: 1e4, original_max_position_embeddings: 16 } }).factor, 4);
});

test('longrope: short factors up to the original length, long ones past it', () => {
  const p: RopeParameters = { rope_type: 'longrope', rope_theta: 1e4, factor: 4, original_max_position_embeddings: 16, short_factor: [1, 2, 4, 8], long_factor: [2, 4, 8, 16] };
  close(ropeFrequencies(p, 8, 64, 16).invFreq, [1, 0.1 / 2, 0.01 / 4, 0.001 / 8]);
  const long = ropeFrequencies(p, 8, 64, 17);
  close(long.invFreq, [1 / 2, 0.1 / 4, 0.01 / 8, 0.001 / 16]);
  assert.ok(Math.abs(long.attentionScaling - Math.sqrt(1 + Math.log(4) / Math.log(16))) < 1e-12);
});

test('a transformers 5 Qwen2 checkpoint with rope_parameters θ = 1e6 computes transformers\' logits', async () => {
  const dir = hfGolden('qwen2-rope1e6-lora');
  const { model } = await loadPretrained(join(dir, 'base'), { tokenizer: false });
  assert.equal(model.config.rope_parameters && (model.config.rope_parameters as RopeParameters).rope_theta, 1e6);
  const inputs = JSON.parse(readFileSync(join(dir, 'inputs.json'), 'utf8'));
  const ref = JSON.parse(readFileSync(join(dir, 'hf_base.json'), 'utf8'));
  const got = tf.tidy(() => model.forward({ inputIds: tf.tensor2d(inputs.input_ids, undefined, 'int32'), attentionMask: tf.tensor2d(inputs.attention_mask, undefined, 'int32') }).logits).dataSync();
  const mask: number[] = inputs.attention_mask.flat();
  const V = ref.shape[2];
  let worst = 0;
  let scale = 0;
  for (let i = 0; i < got.length; i++) {
    if (!mask[Math.floor(i / V)]) continue;
    worst = Math.max(worst, Math.abs(got[i] - ref.data[i]));
    scale = Math.max(scale, Math.abs(ref.data[i]));
  }
  // With θ = 10000 (the bug) the deviation was 0.5 % of the range.
  assert.ok(worst / scale < 1e-4, `relative deviation ${worst / scale}`);
  model.dispose();
});
