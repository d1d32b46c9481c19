/**
 * `@peftkit/models`' serving functions with real LoRA adapters: loading folders onto one base,
 * streaming generation, per-prompt adapters in one batch, classification with SEQ_CLS adapters.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { join } from 'node:path';
import { mkdirSync, writeFileSync } from 'node:fs';
import * as tf from '@tensorflow/tfjs';
import { UserError, initBackend, type PeftMethod } from '@peftkit/core';
import {
  BASE_ADAPTER_NAME, PeftModel, classify, createModel, generateText, loadAdapters, loadPretrained, loadTokenizer, manualSeed, methodForAdapter,
  type LoadedModel, type ModelConfig,
} from '@peftkit/models';
import { readFileSync } from 'node:fs';
import { injectLora } from './model.js';
import { writeHfAdapter } from './hf-format.js';
import { loraMethod } from './method.js';
import { hfFixture, scratch } from '@peftkit/models/testing';

const TINY = hfFixture('ckpt-gpt2-tiny-vocab'); // GPT-2, vocab 21, n_embd 2, 1 layer, with vocab.json + merges.txt
const tmp = scratch('peftkit-serve-');
before(async () => {
  await initBackend('wasm');
  manualSeed(5);
});
after(() => tmp.cleanup());

/** Saves a LoRA adapter with random A and B, made on a copy of `make()`, as an HF folder. */
function savedAdapter(name: string, make: () => LoadedModel['model'], config: Parameters<typeof injectLora>[1], seed: number): string {
  const model = make();
  const h = injectLora(model, config, { seed });
  let s = seed;
  for (const [, v] of h.trainableParameters()) v.assign(tf.randomNormal(v.shape, 0, 2, 'float32', s++));
  const dir = join(tmp.dir, name);
  writeHfAdapter(h, dir, 'tiny');
  model.dispose();
  return dir;
}

async function tinyLm(): Promise<LoadedModel> {
  const m = await loadPretrained(TINY, { task: 'causal-lm' });
  // Larger weights than the checkpoint's, so that greedy choices are far from ties.
  for (const [, v] of m.model.namedParameters()) v.assign(tf.mul(v, 4));
  return m;
}

describe('loadAdapters', () => {
  it('loads HF LoRA folders by name onto one base; the first is active, the base is shared', async () => {
    const base = await tinyLm();
    const a = savedAdapter('a', () => createModel(base.model.config, 'causal-lm'), { r: 2, lora_alpha: 4, target_modules: ['c_attn'] }, 1);
    const b = savedAdapter('b', () => createModel(base.model.config, 'causal-lm'), { r: 4, lora_alpha: 4, target_modules: ['c_attn', 'c_fc'] }, 2);
    const before = tf.memory().numBytes;
    const peft = await loadAdapters(base, [{ name: 'alpha', path: a }, { name: 'beta', path: b }], [loraMethod]);
    assert.ok(peft instanceof PeftModel && peft.base === base);
    assert.deepEqual(peft.active, ['alpha']);
    assert.deepEqual(peft.listAdapters().map((x) => [x.name, x.method, x.active, x.numParameters]), [
      ['alpha', 'lora', true, 2 * 2 + 6 * 2],
      ['beta', 'lora', false, 4 * 2 + 6 * 4 + 4 * 2 + 8 * 4],
    ]);
    assert.equal(tf.memory().numBytes - before, 4 * (16 + 72), 'each adapter costs its own floats only');
    // Loading into an existing PeftModel keeps its active set.
    await loadAdapters(peft, [{ name: 'gamma', path: a }], [loraMethod]);
    assert.deepEqual(peft.active, ['alpha']);
    await assert.rejects(loadAdapters(peft, [{ name: 'alpha', path: a }], [loraMethod]), /already loaded/);
    await assert.rejects(loadAdapters(peft, [{ name: BASE_ADAPTER_NAME, path: a }], [loraMethod]), /names the base model/);
    await assert.rejects(loadAdapters(peft, [{ name: 'x', path: TINY }], [loraMethod]), (e: Error) => e instanceof UserError && /model checkpoint, not an adapter/.test(e.message));
  });

  it('picks the method by recognizesAdapterConfig, then by peft_type; names what is registered when none fits', () => {
    const dir = join(tmp.dir, 'custom');
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, 'adapter_config.json'), JSON.stringify({ config: { reduction_factor: 16 }, name: 'sst' }));
    const hub = { name: 'hub', peftType: null, loadAdapter: () => ({}), recognizesAdapterConfig: (j: Record<string, unknown>) => 'config' in j } as unknown as PeftMethod;
    assert.equal(methodForAdapter(dir, [loraMethod, hub]).name, 'hub');
    assert.equal(methodForAdapter(hfFixture('gpt2-lora-tigrinya'), [hub, loraMethod]).name, 'lora');
    assert.throws(() => methodForAdapter(hfFixture('bloom-prompt-tuning'), [loraMethod, hub]), (e: Error) => e instanceof UserError && /no registered method loads peft_type PROMPT_TUNING/.test(e.message) && /lora \(LORA\), hub/.test((e as UserError).details.hint!));
  });
});

describe('generateText', () => {
  it('streams pieces that add up to the result; adapter "__base__" is the base; mixed batch = each adapter alone', async () => {
    const base = await tinyLm();
    const cfg = () => createModel(base.model.config, 'causal-lm');
    const peft = await loadAdapters(base, [
      { name: 'a', path: savedAdapter('ga', cfg, { r: 2, lora_alpha: 8, target_modules: ['c_attn', 'c_proj'] }, 3) },
      { name: 'b', path: savedAdapter('gb', cfg, { r: 2, lora_alpha: 8, target_modules: ['c_fc'] }, 4) },
    ], [loraMethod]);
    const prompts = [' lower', ' newer wider', ' lowest'];

    const pieces = prompts.map(() => '');
    const streamed = await generateText(peft, prompts, { maxNewTokens: 6, adapter: 'a', eosTokenId: null, onText: (e) => (pieces[e.index] += e.text) });
    assert.deepEqual(pieces, streamed.map((g) => g.text));
    assert.ok(streamed.every((g) => g.tokenIds.length === 6 && g.finishReason === 'length' && g.adapter === 'a'));
    assert.deepEqual(peft.active, ['a'], 'the active set is restored');

    const run = async (adapter: string) => (await generateText(peft, prompts, { maxNewTokens: 6, adapter, eosTokenId: null })).map((g) => g.tokenIds);
    const alone: Record<string, number[][]> = { a: await run('a'), b: await run('b'), [BASE_ADAPTER_NAME]: await run(BASE_ADAPTER_NAME) };
    assert.notDeepEqual(alone.a, alone[BASE_ADAPTER_NAME]);
    assert.notDeepEqual(alone.b, alone.a);
    // The LoadedModel itself carries the injected layers: with no adapter active it is the base.
    peft.setActive([]);
    const base2 = (await generateText(base, prompts, { maxNewTokens: 6, eosTokenId: null })).map((g) => g.tokenIds);
    assert.deepEqual(base2, alone[BASE_ADAPTER_NAME], 'the loaded model with no adapter active');
    peft.setActive(['a']);

    const names = ['b', BASE_ADAPTER_NAME, 'a'];
    const mixed = await generateText(peft, prompts, { maxNewTokens: 6, adapterNames: names, eosTokenId: null });
    assert.deepEqual(mixed.map((g) => g.tokenIds), names.map((n, i) => alone[n][i]));
    assert.deepEqual(mixed.map((g) => g.adapter), names);

    // Stops at EOS (the tokenizer's <|endoftext|>, 20) when it comes.
    const withEos = await generateText(peft, prompts, { maxNewTokens: 6, adapter: 'a', eosTokenId: alone.a[0][1] });
    assert.deepEqual(withEos[0].tokenIds, alone.a[0].slice(0, 2));
    assert.equal(withEos[0].finishReason, 'eos');

    await assert.rejects(generateText(peft, prompts, { adapter: 'zz' }), (e: Error) => e instanceof UserError && /no adapter named "zz"; loaded: a, b/.test(e.message));
    await assert.rejects(generateText(peft, prompts, { adapterNames: ['a'] }), /1 adapter names for 3 inputs/);
    await assert.rejects(generateText(peft, prompts, { chat: true }), /no chat template/);
    await assert.rejects(generateText(peft, [''], {}), /prompt 1 is empty after tokenization/);
  });
});

describe('classify', () => {
  it('labels with id2label; per-input adapters (with their own heads) = each adapter alone', async () => {
    const tiny = JSON.parse(readFileSync(join(TINY, 'config.json'), 'utf8')) as ModelConfig;
    const config = { ...tiny, pad_token_id: 20, num_labels: 3, id2label: { 0: 'neg', 1: 'neu', 2: 'pos' } };
    const make = () => {
      const m = createModel(config, 'sequence-classification');
      for (const [, v] of m.namedParameters()) v.assign(tf.mul(v, 20));
      return m;
    };
    const base: LoadedModel = { model: make(), tokenizer: loadTokenizer(TINY), source: 'tiny-cls' };
    const peft = await loadAdapters(base, [
      { name: 'x', path: savedAdapter('cx', make, { r: 2, target_modules: ['c_attn'], task_type: 'SEQ_CLS' }, 7) },
      { name: 'y', path: savedAdapter('cy', make, { r: 2, target_modules: ['c_fc'], task_type: 'SEQ_CLS' }, 8) },
    ], [loraMethod]);
    const texts = [' lower', ' newer wider lowest', ' wider lower', ' low new'];
    const alone = (adapter: string) => classify(peft, texts, { adapter, batchSize: 3 });
    const x = await alone('x');
    const y = await alone('y');
    const b = await alone(BASE_ADAPTER_NAME);
    for (const r of x) {
      assert.deepEqual(Object.keys(r.probabilities), ['neg', 'neu', 'pos']);
      assert.ok(Math.abs(Object.values(r.probabilities).reduce((s, p) => s + p, 0) - 1) < 1e-5);
      assert.equal(r.label, ['neg', 'neu', 'pos'][r.labelId]);
      assert.equal(r.probabilities[r.label], Math.max(...Object.values(r.probabilities)));
    }
    const diff = (p: typeof x, q: typeof x) => Math.max(...p.flatMap((r, i) => Object.keys(r.probabilities).map((k) => Math.abs(r.probabilities[k] - q[i].probabilities[k]))));
    assert.ok(diff(x, y) > 1e-3 && diff(x, b) > 1e-3);
    // Padding in a batch does not change a row: batch of 1 vs batch of 3.
    assert.ok(diff(await classify(peft, texts, { adapter: 'x', batchSize: 1 }), x) < 1e-5);

    const names = ['y', 'x', BASE_ADAPTER_NAME, 'y'];
    const mixed = await classify(peft, texts, { adapterNames: names, batchSize: 4 });
    const expected = names.map((n, i) => (n === 'x' ? x : n === 'y' ? y : b)[i]);
    assert.ok(diff(mixed, expected) < 1e-5, `${diff(mixed, expected)}`);
    assert.deepEqual(mixed.map((r) => r.adapter), names);

    const lm = await tinyLm();
    await assert.rejects(classify(lm, texts), (e: Error) => e instanceof UserError && /needs a sequence-classification model, but the model is a causal-lm model/.test(e.message));
  });
});


