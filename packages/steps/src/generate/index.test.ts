import assert from 'node:assert/strict';
import { copyFileSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { UserError, createRegistry, importPlugin, initBackend, preparePipeline, runPipeline } from '@peftkit/core';
import { createModel, generateText, loadPretrained, manualSeed, savePretrained, type PeftModel } from '@peftkit/models';
import stepsModule from '../module.js';
import { injectStep } from '../inject/index.js';
import { scratch, testContext } from '../training/testing/context.js';
import { hfFixture, repoRoot } from '@peftkit/models/testing';
import { generateStep, readPromptsFile } from './index.js';

await initBackend('wasm');
const registry = createRegistry([{ name: '@peftkit/steps', version: '0.1.0', module: stepsModule }, await importPlugin('@peftkit/lora', repoRoot())]);
const TINY = hfFixture('ckpt-gpt2-tiny-vocab'); // GPT-2, vocab 21, n_embd 2, with vocab.json + merges.txt

/** A random GPT-2 (n_embd 16) with the fixture's 21-token tokenizer, saved as a model folder. */
function tinyGpt2(folder: string): string {
  manualSeed(11);
  const model = createModel({ model_type: 'gpt2', vocab_size: 21, n_positions: 32, n_embd: 16, n_layer: 1, n_head: 2, bos_token_id: 20, eos_token_id: 20 }, 'causal-lm');
  for (const [, v] of model.namedParameters()) if (v.shape.length === 2) v.assign(tf.mul(v, 20));
  mkdirSync(folder, { recursive: true });
  savePretrained({ model, source: 'tiny' }, folder);
  model.dispose();
  for (const f of ['vocab.json', 'merges.txt', 'tokenizer_config.json', 'special_tokens_map.json']) copyFileSync(join(TINY, f), join(folder, f));
  return folder;
}

const readJsonl = (file: string) => readFileSync(file, 'utf8').trim().split('\n').map((l) => JSON.parse(l));

test('generate on a base model: generations.jsonl has one line per prompt, greedy as generateText gives it', async () => {
  const { dir, cleanup } = scratch();
  try {
    const loaded = await loadPretrained(tinyGpt2(join(dir, 'gpt2')), { task: 'causal-lm' });
    writeFileSync(join(dir, 'more.txt'), ' wider\n\n newer lower\n');
    const ctx = testContext(dir, 'gen', { registry });
    const settings = { prompts: [' lower', ' low'], prompts_file: 'more.txt', max_new_tokens: 5 };
    assert.deepEqual(generateStep.validate!(settings, registry), []);
    const out = await generateStep.run(ctx, { model: loaded }, settings);
    const file = out.artifact as string;
    assert.equal(file, join(dir, 'gen', 'generations.jsonl'));
    const rows = readJsonl(file);
    const prompts = [' lower', ' low', ' wider', ' newer lower'];
    assert.deepEqual(rows.map((r) => r.prompt), prompts);
    const expected = await generateText(loaded, prompts, { maxNewTokens: 5, doSample: false });
    assert.deepEqual(rows.map((r) => r.generation), expected.map((g) => g.text));
    assert.deepEqual(rows.map((r) => [r.index, r.adapter, r.num_tokens, r.finish_reason]), expected.map((g, i) => [i, '__base__', g.tokenIds.length, g.finishReason]));
    assert.ok(rows.every((r) => r.num_tokens >= 1 && r.num_tokens <= 5));
    assert.ok(ctx.lines.some((l) => l.startsWith('info: [3] " wider" → ')), 'each generation is logged');
    assert.deepEqual(ctx.rows.map((r) => [r.generations, r.new_tokens]), [[4, rows.reduce((s, r) => s + r.num_tokens, 0)]]);

    // Sampling with a seed repeats itself.
    const sample = { prompts: [' lower', ' wide'], max_new_tokens: 6, do_sample: true, temperature: 1.5, top_k: 10, top_p: 0.9, seed: 9 };
    const a = readJsonl((await generateStep.run(testContext(dir, 's1', { registry }), { model: loaded }, sample)).artifact as string);
    const b = readJsonl((await generateStep.run(testContext(dir, 's2', { registry }), { model: loaded }, sample)).artifact as string);
    assert.deepEqual(a, b);
  } finally {
    cleanup();
  }
});

test('generate with an adapter of a peft-model: the adapter, or __base__ for the base', async () => {
  const { dir, cleanup } = scratch();
  try {
    const loaded = await loadPretrained(tinyGpt2(join(dir, 'gpt2')), { task: 'causal-lm' });
    const base = readJsonl((await generateStep.run(testContext(dir, 'before', { registry }), { model: loaded }, { prompts: [' lower', ' newer'], max_new_tokens: 6 })).artifact as string);
    const peft = (await injectStep.run(testContext(dir, 'peft', { registry }), { model: loaded }, { method: 'lora', config: { r: 2, lora_alpha: 16, target_modules: ['c_attn', 'c_fc'] }, adapter_name: 'tuned' })).model as PeftModel;
    let s = 1;
    for (const [, v] of peft.trainableParameters()) v.assign(tf.randomNormal(v.shape, 0, 3, 'float32', s++));
    const run = async (step: string, adapter: string | null) => readJsonl((await generateStep.run(testContext(dir, step, { registry }), { model: peft }, { prompts: [' lower', ' newer'], max_new_tokens: 6, adapter })).artifact as string);
    const tuned = await run('tuned', 'tuned');
    const plain = await run('plain', '__base__');
    const active = await run('active', null);
    assert.deepEqual(plain.map((r) => r.generation), base.map((r) => r.generation), '__base__: the base model\'s output');
    assert.deepEqual(active.map((r) => r.generation), tuned.map((r) => r.generation), 'null: the active adapter');
    assert.notDeepEqual(tuned.map((r) => r.generation), plain.map((r) => r.generation));
    assert.deepEqual([tuned[0].adapter, plain[0].adapter, active[0].adapter], ['tuned', '__base__', 'tuned']);
    assert.deepEqual(peft.active, ['tuned']);

    // An adapter trained on instruction data: prompts are wrapped as training wrapped them, unless raw.
    peft.adapters.get('tuned')!.promptFormat = { shape: 'instruction', instruction_template: ' wider {instruction}' };
    const wrapped = await run('wrapped', 'tuned');
    assert.deepEqual(wrapped.map((r) => [r.prompt, r.model_prompt]), [[' lower', ' wider  lower'], [' newer', ' wider  newer']]);
    const direct = await generateText(peft, [' wider  lower', ' wider  newer'], { maxNewTokens: 6, adapter: 'tuned' });
    assert.deepEqual(wrapped.map((r) => r.generation), direct.map((g) => g.text));
    const raw = readJsonl((await generateStep.run(testContext(dir, 'raw', { registry }), { model: peft }, { prompts: [' lower', ' newer'], max_new_tokens: 6, adapter: 'tuned', raw: true })).artifact as string);
    assert.deepEqual(raw.map((r) => r.generation), tuned.map((r) => r.generation));
    assert.ok(raw.every((r) => !('model_prompt' in r)));
    peft.adapters.get('tuned')!.promptFormat = undefined;
    await assert.rejects(run('bad', 'other'), (e: Error) => e instanceof UserError && /no adapter named "other" on the input model; loaded: tuned/.test(e.message) && (e as UserError).details.pointer === '/steps/bad/settings/adapter');
  } finally {
    cleanup();
  }
});

test('prompts files and settings errors name the file, line and field', () => {
  const { dir, cleanup } = scratch();
  try {
    writeFileSync(join(dir, 'p.jsonl'), '{"prompt": "a b"}\n\n{"text": "c"}\n');
    assert.deepEqual(readPromptsFile(join(dir, 'p.jsonl')), ['a b', 'c']);
    writeFileSync(join(dir, 'bad.jsonl'), '{"prompt": "a"}\n{"question": "b"}\n');
    assert.throws(() => readPromptsFile(join(dir, 'bad.jsonl')), (e: Error) => e instanceof UserError && /bad\.jsonl:2: the line has no "prompt"/.test(e.message));
    writeFileSync(join(dir, 'broken.jsonl'), '{"prompt": \n');
    assert.throws(() => readPromptsFile(join(dir, 'broken.jsonl')), /broken\.jsonl:1: not valid JSON/);
    assert.throws(() => readPromptsFile(join(dir, 'none.txt')), /prompts file not found/);
    assert.deepEqual(generateStep.validate!({}, registry).map((i) => i.pointer), ['/prompts']);
  } finally {
    cleanup();
  }
});

test('through the engine: load → generate writes the file in the run folder', async () => {
  const { dir, cleanup } = scratch();
  try {
    const modelDir = tinyGpt2(join(dir, 'gpt2'));
    const pipeline = { name: 'gen', seed: 3, backend: 'wasm', steps: { base: { kind: 'load', settings: { model: modelDir } }, say: { kind: 'generate', inputs: { model: 'base' }, settings: { prompts: [' low'], max_new_tokens: 3 } } } };
    const file = join(dir, 'gen.json');
    writeFileSync(file, JSON.stringify(pipeline));
    const sources = { builtins: [{ name: '@peftkit/steps', version: '0.1.0', module: stepsModule }] };
    const { runDir } = await runPipeline(await preparePipeline(file, [], sources), { runsDir: join(dir, 'runs') });
    const out = join(runDir, 'say', 'generations.jsonl');
    assert.ok(existsSync(out));
    assert.equal(readJsonl(out)[0].prompt, ' low');
  } finally {
    cleanup();
  }
});
