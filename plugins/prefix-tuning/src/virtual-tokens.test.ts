import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { initBackend } from '@peftkit/core';
import { PeftModel, generate, type PreTrainedModel } from '@peftkit/models';
import { injectPrefixTuning, injectPromptTuning } from './index.js';
import { scratch, tinyModel } from '@peftkit/models/testing';
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
