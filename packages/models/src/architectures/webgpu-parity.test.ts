// Each architecture on the WebGPU backend (llvmpipe through Dawn's OpenGL ES backend on machines without a GPU)
// computes the CPU backend's logits and gradients. Own process: tfjs's backend is global.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { initBackend, webgpuUnavailable } from '@peftkit/core';
import { createModel, manualSeed, type ModelConfig, type PreTrainedModel } from '../index.js';
import { TINY_CONFIGS, sampleIds } from '../testing/index.js';

const reason = await webgpuUnavailable();
if (reason) console.log(`# SKIP WebGPU parity: ${reason}`);

const CONFIGS: Record<string, ModelConfig> = {
  ...TINY_CONFIGS,
  qwen2: { ...TINY_CONFIGS.llama, model_type: 'qwen2', architectures: ['Qwen2ForCausalLM'] },
  mistral: { ...TINY_CONFIGS.llama, model_type: 'mistral', architectures: ['MistralForCausalLM'], sliding_window: 4 },
  'gpt2-seqcls': { ...TINY_CONFIGS.gpt2, architectures: ['GPT2ForSequenceClassification'], num_labels: 3, pad_token_id: 0 },
  // RoPE that depends on the length (max position + 1, taken on the device): 8 positions, past the pretrained 6;
  // run with position ids computed on the device (see FROM_MASK).
  'llama-dynamic-rope': { ...TINY_CONFIGS.llama, max_position_embeddings: 6, rope_parameters: { rope_type: 'dynamic', rope_theta: 10000, factor: 2 } },
  'llama-longrope': {
    ...TINY_CONFIGS.llama,
    rope_parameters: { rope_type: 'longrope', rope_theta: 10000, factor: 4, original_max_position_embeddings: 6, short_factor: [1, 1.5], long_factor: [2, 3] },
  },
};

/**
 * Configs run with HF's position ids from the mask, cumsum(mask) − 1, computed by tensor ops: on webgpu they live on
 * the GPU (tfjs computes small ops on host-resident values on the host), so a synchronous read of them would stop.
 */
const FROM_MASK = new Set(['llama-dynamic-rope', 'llama-longrope']);

interface Result {
  output: Float32Array;
  loss: number;
  grads: Map<string, Float32Array>;
}

/**
 * Output (logits, or the last hidden state of a bare encoder), a loss that weighs every output element
 * differently (so no gradient cancels), and the gradient of every parameter; two rows, the second right-padded by 3.
 */
async function run(model: PreTrainedModel, positionsFromMask = false): Promise<Result> {
  const ids = sampleIds(2, 8, 50, 5);
  const mask = tf.tensor2d([[1, 1, 1, 1, 1, 1, 1, 1], [1, 1, 1, 1, 1, 0, 0, 0]], [2, 8], 'int32');
  const positionIds = positionsFromMask ? (tf.sub(tf.cumsum(mask, 1), 1) as tf.Tensor2D) : undefined;
  const params = [...model.namedParameters()];
  const out = tf.tidy(() => {
    const o = model.forward({ inputIds: ids, attentionMask: mask, positionIds });
    return o.lastHiddenState && model.task === 'base' ? o.lastHiddenState : o.logits;
  });
  const weights = tf.tidy(() => tf.sin(tf.range(0, out.size).reshape(out.shape)));
  const { value, grads } = tf.variableGrads(() => tf.tidy(() => {
    const o = model.forward({ inputIds: ids, attentionMask: mask, positionIds });
    const y = o.lastHiddenState && model.task === 'base' ? o.lastHiddenState : o.logits;
    return tf.sum(tf.mul(y, weights)) as tf.Scalar;
  }), params.map(([, v]) => v as tf.Variable));
  const res: Result = { output: (await out.data()) as Float32Array, loss: (await value.data())[0], grads: new Map() };
  for (const [name, v] of params) {
    const g = grads[(v as tf.Variable).name];
    res.grads.set(name, g ? ((await g.data()) as Float32Array) : new Float32Array(v.size));
  }
  tf.dispose([ids, mask, out, weights, value, ...Object.values(grads), ...(positionIds ? [positionIds] : [])]);
  return res;
}

/**
 * max |a − e| ≤ rtol · max |e| + atol: relative to the tensor's scale, as golden.test.ts compares. The absolute
 * floor is for key biases, whose gradient is zero in exact arithmetic (softmax ignores a constant added to
 * every score of a query), so both backends give rounding noise of about 1e-8 there.
 */
function assertClose(actual: Float32Array, expected: Float32Array, what: string, rtol = 1e-4, atol = 1e-6): void {
  assert.equal(actual.length, expected.length, `${what}: size`);
  let diff = 0;
  let scale = 0;
  for (let i = 0; i < expected.length; i++) {
    diff = Math.max(diff, Math.abs(actual[i] - expected[i]));
    scale = Math.max(scale, Math.abs(expected[i]));
  }
  assert.ok(diff <= rtol * scale + atol, `${what}: max |diff| ${diff.toExponential(3)} > ${rtol} × max |cpu| ${scale.toExponential(3)} + ${atol}`);
}

for (const [name, config] of Object.entries(CONFIGS)) {
  test(`${name}: logits and every parameter's gradient on webgpu equal the CPU backend's (relative 1e-4)`, { skip: reason }, async () => {
    await initBackend('cpu');
    manualSeed(7);
    const model = createModel(config);
    const cpu = await run(model, FROM_MASK.has(name));
    await initBackend('webgpu'); // the model's variables move to the GPU on first use
    const gpu = await run(model, FROM_MASK.has(name));
    model.dispose();
    assert.ok(cpu.grads.size >= 10, `${cpu.grads.size} parameters`);
    assertClose(gpu.output, cpu.output, 'output');
    assert.ok(Math.abs(gpu.loss - cpu.loss) <= 1e-4 * Math.max(1, Math.abs(cpu.loss)), `loss ${gpu.loss} vs ${cpu.loss}`);
    let nonzero = 0;
    for (const [p, g] of cpu.grads) {
      if (g.some((x) => x !== 0)) nonzero++;
      assertClose(gpu.grads.get(p)!, g, `grad ${p}`);
    }
    assert.ok(nonzero >= cpu.grads.size - 2, `${nonzero} of ${cpu.grads.size} gradients are non-zero`);
  });
}
