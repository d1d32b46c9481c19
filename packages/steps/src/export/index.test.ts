import assert from 'node:assert/strict';
import { existsSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { isAbsolute, join, relative, resolve } from 'node:path';
import { test } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { createRegistry, importPlugin, initBackend } from '@peftkit/core';
import { loadPretrained, readHfAdapterFolder, readSafetensorsHeader, type LoadedModel, type PeftModel } from '@peftkit/models';
import stepsModule from '../module.js';
import { injectStep } from '../inject/index.js';
import { scratch, testContext } from '../training/testing/context.js';
import { hfFixture, repoRoot } from '@peftkit/models/testing';
import { exportStep } from './index.js';

await initBackend('wasm');

// The LoRA plugin is found the way the engine finds it (by package name), not imported statically.
const registry = createRegistry([{ name: '@peftkit/steps', version: '0.1.0', module: stepsModule }, await importPlugin('@peftkit/lora', repoRoot())]);
const FIXTURE = hfFixture('ckpt-gpt2-tiny-vocab'); // GPT-2, vocab 21, n_embd 2, 1 layer
const IDS = tf.tensor2d([[1, 5, 7, 2, 9], [3, 3, 4, 0, 20]], [2, 5], 'int32');

const logits = (m: { forward(i: { inputIds: tf.Tensor2D }): { logits: tf.Tensor } }) => tf.tidy(() => Array.from(m.forward({ inputIds: IDS }).logits.dataSync()));
const maxDiff = (a: number[], b: number[]) => Math.max(...a.map((x, i) => Math.abs(x - b[i])));

/** Gives every trainable tensor seeded random values (as if trained), so that the adapter changes outputs. */
function perturb(peft: PeftModel) {
  let s = 1;
  for (const [, v] of peft.trainableParameters()) tf.tidy(() => v.assign(tf.randomNormal(v.shape, 0, 0.5, 'float32', s++)));
}

async function loraOn(loaded: LoadedModel, dir: string) {
  const ctx = testContext(dir, 'peft', { registry });
  return (await injectStep.run(ctx, { model: loaded }, { method: 'lora', config: { r: 2, lora_alpha: 4, target_modules: ['c_attn', 'c_proj'] } })).model as PeftModel;
}

test('LoRA export: exact HF PEFT key set and shapes, sorted config, metadata; loading it back reproduces the outputs', async () => {
  const { dir, cleanup } = scratch();
  try {
    const loaded = await loadPretrained(FIXTURE, { task: 'causal-lm' });
    const peft = await loraOn(loaded, dir);
    perturb(peft);
    const expected = logits(peft);
    const ctx = testContext(dir, 'export', { registry });
    const out = await exportStep.run(ctx, { model: peft }, { path: 'adapter', merged: true });
    const folder = out.artifact as string;
    assert.equal(folder, join(dir, 'adapter')); // relative to the pipeline folder
    assert.deepEqual(readdirSync(folder).sort(), ['adapter_config.json', 'adapter_model.safetensors']);

    // Keys: `base_model.model.` + module path + `.lora_A.weight` / `.lora_B.weight`; c_proj matches attn.c_proj and mlp.c_proj.
    const header = readSafetensorsHeader(join(folder, 'adapter_model.safetensors'));
    const p = 'base_model.model.transformer.h.0';
    assert.deepEqual(Object.fromEntries(Object.entries(header.tensors).map(([k, e]) => [k, e.shape])), {
      [`${p}.attn.c_attn.lora_A.weight`]: [2, 2], [`${p}.attn.c_attn.lora_B.weight`]: [6, 2],
      [`${p}.attn.c_proj.lora_A.weight`]: [2, 2], [`${p}.attn.c_proj.lora_B.weight`]: [2, 2],
      [`${p}.mlp.c_proj.lora_A.weight`]: [2, 8], [`${p}.mlp.c_proj.lora_B.weight`]: [2, 2],
    });
    assert.deepEqual(header.metadata, { format: 'pt' });
    const text = readFileSync(join(folder, 'adapter_config.json'), 'utf8');
    const config = JSON.parse(text);
    assert.equal(config.peft_type, 'LORA');
    // A local base is named relative to the adapter folder (no absolute path of this machine), and resolves back to it.
    assert.equal(config.base_model_name_or_path, relative(folder, loaded.source!));
    assert.ok(!isAbsolute(config.base_model_name_or_path));
    assert.equal(resolve(folder, config.base_model_name_or_path), loaded.source);
    assert.equal(config.r, 2);
    assert.deepEqual(Object.keys(config), Object.keys(config).sort());
    assert.ok(text.startsWith('{\n  "'), 'indent 2');
    assert.equal(ctx.rows[0].adapter_bytes, statSync(join(folder, 'adapter_config.json')).size + statSync(join(folder, 'adapter_model.safetensors')).size);

    // Load it back into a fresh base with the plugin's HF reader.
    const lora = await import('@peftkit/lora');
    const fresh = await loadPretrained(FIXTURE, { task: 'causal-lm' });
    const handle = lora.loadHfLoraAdapter(fresh.model as any, folder);
    const { PeftModel } = await import('@peftkit/models');
    const again = new PeftModel(fresh);
    again.addAdapter(handle);
    assert.ok(maxDiff(logits(again), expected) < 1e-6);
    const files = readHfAdapterFolder(folder);
    assert.equal(files.tensors.size, 6);
    for (const t of files.tensors.values()) t.dispose();

    // The merged model loads with no adapter at all and gives the adapted outputs; the model in memory is unmerged again.
    const merged = await loadPretrained(join(dir, 'adapter-merged'), { task: 'causal-lm' });
    assert.ok(maxDiff(logits(merged.model), expected) < 1e-5, `merged differs by ${maxDiff(logits(merged.model), expected)}`);
    assert.ok(maxDiff(logits(peft), expected) < 1e-6);
    assert.ok(!Object.keys(readSafetensorsHeader(join(dir, 'adapter-merged', 'model.safetensors')).tensors).some((k) => k.includes('lora')));
  } finally {
    cleanup();
  }
});

test('a named adapter goes into a subfolder; re-export replaces the folder atomically; full exports a whole checkpoint', async () => {
  const { dir, cleanup } = scratch();
  try {
    const loaded = await loadPretrained(FIXTURE, { task: 'causal-lm' });
    const ctx = testContext(dir, 'peft', { registry });
    const peft = (await injectStep.run(ctx, { model: loaded }, { method: 'lora', adapter_name: 'tigrinya', config: { r: 1, target_modules: ['c_attn'] } })).model as PeftModel;
    const e = testContext(dir, 'export', { registry });
    const first = (await exportStep.run(e, { model: peft }, {})).artifact as string;
    assert.equal(first, join(dir, 'export', 'adapter', 'tigrinya'));
    await exportStep.run(e, { model: peft }, {});
    assert.deepEqual(readdirSync(join(dir, 'export', 'adapter')), ['tigrinya']); // no temporary leftovers

    const base2 = await loadPretrained(FIXTURE, { task: 'causal-lm' });
    const full = (await injectStep.run(ctx, { model: base2 }, { method: 'full', config: {} })).model as PeftModel;
    perturb(full);
    const expected = logits(full);
    const folder = (await exportStep.run(testContext(dir, 'fullexport', { registry }), { model: full }, {})).artifact as string;
    assert.ok(existsSync(join(folder, 'config.json')) && existsSync(join(folder, 'model.safetensors')));
    const back = await loadPretrained(folder, { task: 'causal-lm' });
    assert.ok(maxDiff(logits(back.model), expected) < 1e-6);
  } finally {
    cleanup();
  }
});

test('merged export of a tied-embedding base whose embedding the adapter saves whole: the head is untied, and the reloaded model is the adapted one', async () => {
  const { TINY_CONFIGS, tinyModel } = await import('@peftkit/models/testing');
  const cases = [
    { config: { ...TINY_CONFIGS.llama, tie_word_embeddings: true }, save: ['embed_tokens'], target: ['q_proj'], head: 'lm_head.weight', emb: 'model.embed_tokens.weight' },
    { config: TINY_CONFIGS.gpt2, save: ['wte'], target: ['c_attn'], head: 'lm_head.weight', emb: 'transformer.wte.weight' },
  ];
  for (const c of cases) {
    const { dir, cleanup } = scratch();
    try {
      const loaded: LoadedModel = { model: tinyModel(c.config), source: 'tiny' } as LoadedModel;
      const ctx = testContext(dir, 'peft', { registry });
      const peft = (await injectStep.run(ctx, { model: loaded }, { method: 'lora', config: { r: 2, target_modules: c.target, modules_to_save: c.save } })).model as PeftModel;
      perturb(peft);
      const ids = tf.tensor2d([[1, 5, 7, 2, 9], [3, 3, 4, 0, 20]], [2, 5], 'int32');
      const run = (m: { forward(i: { inputIds: tf.Tensor2D }): { logits: tf.Tensor } }) => tf.tidy(() => Array.from(m.forward({ inputIds: ids }).logits.dataSync()));
      const expected = run(peft);
      await exportStep.run(testContext(dir, 'export', { registry }), { model: peft }, { path: 'adapter', merged: true });
      const cfg = JSON.parse(readFileSync(join(dir, 'adapter-merged', 'config.json'), 'utf8'));
      assert.equal(cfg.tie_word_embeddings, false, `${c.config.model_type}: the saved head and embedding differ, so they must not be tied again`);
      assert.deepEqual(Object.keys(readSafetensorsHeader(join(dir, 'adapter-merged', 'model.safetensors')).tensors).filter((k) => k === c.head || k === c.emb).sort(), [c.emb, c.head].sort());
      const merged = await loadPretrained(join(dir, 'adapter-merged'), { task: 'causal-lm' });
      const got = run(merged.model);
      assert.ok(maxDiff(got, expected) < 1e-5, `${c.config.model_type}: merged differs from the adapter on its base by ${maxDiff(got, expected)}`);
    } finally {
      cleanup();
    }
  }
});

test('validation (--dry-run) refuses a merged export after a quantize step, before anything runs', async () => {
  const { validatePipeline } = await import('@peftkit/core');
  const withQlora = createRegistry([{ name: '@peftkit/steps', version: '0.1.0', module: stepsModule }, await importPlugin('@peftkit/lora', repoRoot()), await importPlugin('@peftkit/qlora', repoRoot())]);
  const doc = (merged: boolean) => ({
    name: 'q',
    steps: {
      base: { kind: 'load', settings: { model: 'somewhere' } },
      quantized: { kind: 'quantize', inputs: { model: 'base' }, settings: {} },
      peft: { kind: 'inject', inputs: { model: 'quantized' }, settings: { method: 'qlora', config: {} } },
      export: { kind: 'export', inputs: { model: 'peft' }, settings: { merged } },
    },
  });
  const bad = validatePipeline('q.json', doc(true), withQlora).issues;
  assert.equal(bad.length, 1, JSON.stringify(bad));
  assert.equal(bad[0].pointer, '/steps/export/settings/merged');
  assert.match(bad[0].message, /cannot merge into a quantized base model: step "quantized" quantizes it/);
  assert.match(bad[0].hint!, /"merged": false/);
  assert.deepEqual(validatePipeline('q.json', doc(false), withQlora).issues, []);
  // Without a quantize step, merged is fine.
  const plain = { name: 'p', steps: { base: { kind: 'load', settings: { model: 'x' } }, peft: { kind: 'inject', inputs: { model: 'base' }, settings: { method: 'lora', config: {} } }, export: { kind: 'export', inputs: { model: 'peft' }, settings: { merged: true } } } };
  assert.deepEqual(validatePipeline('p.json', plain, withQlora).issues, []);
});

test('base_model_name_or_path: a hub id as given, a local folder relative to the adapter, null for a model built from a config', async () => {
  const { exportedBaseModelName } = await import('./index.js');
  assert.equal(exportedBaseModelName('openai-community/gpt2', '/x/runs/adapter'), 'openai-community/gpt2');
  assert.equal(exportedBaseModelName(FIXTURE, join(repoRoot(), 'runs', 'a', 'adapter')), relative(join(repoRoot(), 'runs', 'a', 'adapter'), FIXTURE));
  assert.equal(exportedBaseModelName('from_config', '/x'), null);
  assert.equal(exportedBaseModelName('/nowhere/config.json', '/x'), null); // from_config with a config file: no weights to load
  assert.equal(exportedBaseModelName(undefined, '/x'), null);
  // Through the step: a from_config base writes null, not "from_config".
  const { dir, cleanup } = scratch();
  try {
    const { TINY_CONFIGS, tinyModel } = await import('@peftkit/models/testing');
    const loaded = { model: tinyModel(TINY_CONFIGS.gpt2), source: 'from_config' } as LoadedModel;
    const peft = (await injectStep.run(testContext(dir, 'peft', { registry }), { model: loaded }, { method: 'lora', config: { r: 1, target_modules: ['c_attn'] } })).model as PeftModel;
    const folder = (await exportStep.run(testContext(dir, 'export', { registry }), { model: peft }, {})).artifact as string;
    assert.equal(JSON.parse(readFileSync(join(folder, 'adapter_config.json'), 'utf8')).base_model_name_or_path, null);
  } finally {
    cleanup();
  }
});
