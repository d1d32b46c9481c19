import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { UserError, initBackend } from '@peftkit/core';
import { PeftModel, createModel, readSafetensors, readSafetensorsRaw } from '@peftkit/models';
import { loadPromptTuningAdapter, promptTuningConfigFromHf, promptTuningMethod, readPromptLearningFolder, savePromptLearningAdapter } from './index.js';
import { hfFixture, logitsOf, maxAbsDiff, sampleIds, scratch, tinyModel } from '@peftkit/models/testing';
import { GPT2 } from './testing/tiny-models.js';

const BLOOM = hfFixture('bloom-prompt-tuning');
const tmp = scratch();
before(async () => {
  await initBackend('wasm');
});
after(() => tmp.cleanup());

/** A Llama-shaped model as wide as bloomz-560m (hidden 1024), 1 layer, 16 heads, small vocab and MLP. */
function wideLlama() {
  return createModel({ model_type: 'llama', architectures: ['LlamaForCausalLM'], vocab_size: 32, hidden_size: 1024, intermediate_size: 32, num_hidden_layers: 1, num_attention_heads: 16, num_key_value_heads: 4, max_position_embeddings: 64 });
}

describe('prompt tuning: HF PEFT format (bigscience/bloomz-560m adapter)', () => {
  it('the config and the [20, 1024] tensor are read', () => {
    const { json, table } = readPromptLearningFolder(BLOOM, 'PROMPT_TUNING');
    assert.deepEqual(table.shape, [20, 1024]);
    const c = promptTuningConfigFromHf(json, 'adapter_config.json');
    assert.deepEqual(c, { num_virtual_tokens: 20, token_dim: 1024, num_transformer_submodules: 1, num_attention_heads: 16, num_layers: 24, prompt_tuning_init: 'RANDOM', prompt_tuning_init_text: null, tokenizer_name_or_path: 'bigscience/bloomz-560m', task_type: 'CAUSAL_LM' });
    assert.ok(promptTuningMethod.recognizesAdapterConfig(json));
    table.dispose();
  });

  it('applied to a model of width 1024: outputs differ from the base and equal a manual prepend', () => {
    const model = wideLlama();
    const h = loadPromptTuningAdapter(model, BLOOM, { seed: 1 });
    const peft = new PeftModel({ model, source: 'bigscience/bloomz-560m' });
    peft.addAdapter(h);
    const ids = sampleIds(2, 3, 32);
    const got = logitsOf(peft, ids);
    const base = logitsOf(model, ids);
    assert.deepEqual(got.shape, [2, 3, 32]);
    assert.ok(maxAbsDiff(got, base) > 1e-4, 'the prompt must change the outputs');
    const file = readSafetensors(join(BLOOM, 'adapter_model.safetensors')).tensors.get('prompt_embeddings')!;
    const manual = tf.tidy(() => {
      const embeds = tf.concat([tf.tile(file.expandDims(0), [2, 1, 1]), model.getInputEmbeddings().forward(ids)], 1) as tf.Tensor3D;
      return tf.slice(model.forward({ inputsEmbeds: embeds }).logits, [0, 20, 0], [-1, 3, -1]);
    });
    assert.ok(maxAbsDiff(got, manual) < 1e-5, `diff ${maxAbsDiff(got, manual)}`);
    // The earlier checkpoint has the same config and other values.
    const early = loadPromptTuningAdapter(wideLlama(), join(BLOOM, 'checkpoint-500'));
    assert.ok(maxAbsDiff(early.promptEmbeddings, h.promptEmbeddings) > 1e-3);
  });

  it('save → load: prompt_embeddings bit-identical, adapter_config.json byte-identical to HF PEFT\'s', () => {
    const h = loadPromptTuningAdapter(wideLlama(), BLOOM);
    const dir = join(tmp.dir, 'bloom');
    const files = savePromptLearningAdapter(dir, h, 'bigscience/bloomz-560m');
    assert.deepEqual(files.sort(), ['adapter_config.json', 'adapter_model.safetensors']);
    const original = readSafetensorsRaw(join(BLOOM, 'adapter_model.safetensors'), 'prompt_embeddings');
    const saved = readSafetensorsRaw(join(dir, 'adapter_model.safetensors'), 'prompt_embeddings');
    assert.equal(saved.dtype, 'F32');
    assert.deepEqual(saved.shape, [20, 1024]);
    assert.equal(Buffer.compare(Buffer.from(saved.bytes), Buffer.from(original.bytes)), 0);
    assert.equal(readFileSync(join(dir, 'adapter_config.json'), 'utf8'), readFileSync(join(BLOOM, 'adapter_config.json'), 'utf8'));
    const again = loadPromptTuningAdapter(wideLlama(), dir);
    assert.equal(Buffer.compare(Buffer.from((({ buffer, byteOffset, byteLength }) => new Uint8Array(buffer, byteOffset, byteLength))(again.promptEmbeddings.dataSync() as Float32Array)), Buffer.from(original.bytes.buffer, original.bytes.byteOffset, original.bytes.byteLength)), 0);
  });

  it('a model of another width is refused, naming token_dim', () => {
    assert.throws(() => loadPromptTuningAdapter(tinyModel(GPT2), BLOOM), (e: unknown) => e instanceof UserError && e.details.pointer === '/token_dim' && /1024/.test(e.message));
  });

  it('a prefix-tuning folder is not read as prompt tuning', () => {
    assert.throws(() => readPromptLearningFolder(BLOOM, 'PREFIX_TUNING'), (e: unknown) => e instanceof UserError && e.details.pointer === '/peft_type');
  });
});
