import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { initBackend } from '@peftkit/core';
import { PeftModel, generate, type PreTrainedModel } from '@peftkit/models';
import { UserError } from '@peftkit/core';
import { injectPrefixTuning, injectPromptTuning, prefixTuningMethod, promptTuningMethod } from './index.js';
import { TINY_CONFIGS, scratch, tinyModel } from '@peftkit/models/testing';
import { GPT2, LLAMA_GQA } from './testing/tiny-models.js';

const tmp = scratch();
before(async () => {
  await initBackend('wasm');
});
after(() => tmp.cleanup());

const methods = {
  'prompt tuning': (m: PreTrainedModel) => injectPromptTuning(m, { num_virtual_tokens: 4, prompt_tuning_init: 'RANDOM' }, { seed: 5 }),
  'prefix tuning': (m: PreTrainedModel) => injectPrefixTuning(m, { num_virtual_tokens: 4 }, { seed: 5 }),
};

describe('virtual tokens: batched generation with left-padded prompts', () => {
  for (const [arch, config] of [['gpt2', GPT2], ['llama (GQA)', LLAMA_GQA]] as const) {
    for (const [method, inject] of Object.entries(methods)) {
      it(`${arch}, ${method}: each row of a batch generates what it generates alone`, () => {
        const model = tinyModel(config);
        const peft = new PeftModel({ model, source: 'tiny' });
        peft.addAdapter(inject(model));
        // Rows of 7, 2 and 4 tokens: the shorter ones are left-padded by 5 and 3.
        const prompts = [[3, 14, 15, 9, 26, 5, 35], [8, 9], [27, 18, 28, 1]];
        const opts = { maxNewTokens: 8, eosTokenId: null, padTokenId: 0 };
        const batched = generate(peft, prompts, opts);
        const alone = prompts.map((p) => generate(peft, [p], opts).generated[0]);
        assert.deepEqual(batched.generated, alone);
        // The padded positions do change what the rows would see without the position ids from the mask.
        const unshifted = generate(peft, prompts, { ...opts, positionIdsFromMask: false });
        assert.notDeepEqual(unshifted.generated.slice(1), alone.slice(1), 'the test prompts must be sensitive to positions');
      });
    }
  }
});

describe('virtual tokens: sequence classification', () => {
  for (const method of [promptTuningMethod, prefixTuningMethod]) {
    it(`${method.name} refuses to train a classifier whose new head it would leave random, saying what to use`, () => {
      const cls = tinyModel({ ...TINY_CONFIGS.gpt2, architectures: ['GPT2ForSequenceClassification'], num_labels: 3, pad_token_id: 0 });
      assert.throws(
        () => method.inject(cls, { num_virtual_tokens: 2 }, {} as never),
        (e: Error) => e instanceof UserError && /sequence-classification/.test(e.message) && /score/.test(e.message) && /label_words/.test(e.details.hint ?? ''),
      );
      // A causal LM is fine.
      assert.ok(method.inject(tinyModel(GPT2), { num_virtual_tokens: 2 }, {} as never));
    });
  }
});
