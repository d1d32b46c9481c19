// End to end through the engine: load → dataset → inject (LoRA) → train → evaluate → export, then --resume.
import assert from 'node:assert/strict';
import { copyFileSync, existsSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { createRegistry, importPlugin, initBackend, preparePipeline, runPipeline } from '@peftkit/core';
import * as tf from '@tensorflow/tfjs';
import { createModel, loadAdapters, loadPretrained, manualSeed, readSafetensors, readSafetensorsHeader, savePretrained } from '@peftkit/models';
import stepsModule from '../module.js';
import { scratch } from '../training/testing/context.js';
import { hfFixture, repoRoot } from '@peftkit/models/testing';

const words = ['lowest', 'newer', 'wider', 'lower', 'slow', 'wide', 'new', 'low'];

/**
 * A random GPT-2 (n_embd 16, 1 layer) with the 21-token tokenizer of the `ckpt-gpt2-tiny-vocab`
 * fixture: that checkpoint's own n_embd of 2 is too narrow to learn anything measurable.
 */
async function tinyGpt2(folder: string, opts: { dropout?: number; layers?: number } = {}): Promise<string> {
  await initBackend('wasm');
  manualSeed(11);
  const p = opts.dropout ?? 0;
  const model = createModel({ model_type: 'gpt2', vocab_size: 21, n_positions: 32, n_embd: 16, n_layer: opts.layers ?? 1, n_head: 2, bos_token_id: 20, eos_token_id: 20, resid_pdrop: p, embd_pdrop: p, attn_pdrop: p }, 'causal-lm');
  savePretrained({ model, source: 'tiny' }, folder);
  model.dispose();
  for (const f of ['vocab.json', 'merges.txt', 'tokenizer_config.json', 'special_tokens_map.json']) copyFileSync(join(hfFixture('ckpt-gpt2-tiny-vocab'), f), join(folder, f));
  return folder;
}

test('a LoRA pipeline on a real (tiny) GPT-2 checkpoint trains, evaluates, exports, and resumes without retraining', async () => {
  const { dir, cleanup } = scratch();
  try {
    // 40 short lines of words the fixture's 21-token vocabulary covers.
    const lines = Array.from({ length: 40 }, (_, i) => JSON.stringify({ text: Array.from({ length: 5 }, (_, k) => words[(i * 3 + k * (1 + (i % 3))) % words.length]).join(' ') }));
    writeFileSync(join(dir, 'data.jsonl'), lines.join('\n') + '\n');
    mkdirSync(join(dir, 'gpt2'));
    const modelDir = await tinyGpt2(join(dir, 'gpt2'));
    const pipeline = {
      name: 'tiny-lora',
      seed: 3,
      backend: 'wasm',
      steps: {
        base: { kind: 'load', settings: { model: modelDir } },
        data: { kind: 'dataset', inputs: { tokenizer: 'base' }, settings: { path: 'data.jsonl', shape: 'text', max_length: 16 } },
        peft: { kind: 'inject', inputs: { model: 'base' }, settings: { method: 'lora', config: { r: 2, lora_alpha: 4, target_modules: ['c_attn', 'c_proj'], fan_in_fan_out: true } } },
        fit: { kind: 'train', inputs: { model: 'peft', dataset: 'data' }, settings: { learning_rate: 0.02, max_steps: 6, per_device_train_batch_size: 4, save_steps: 3, logging_steps: 2, eval_steps: 3, warmup_ratio: 0.2 } },
        score: { kind: 'evaluate', inputs: { model: 'fit', dataset: 'data' }, settings: { num_samples: 2, max_new_tokens: 4 } },
        out: { kind: 'export', inputs: { model: 'fit' }, settings: {} },
      },
    };
    const file = join(dir, 'tiny-lora.json');
    writeFileSync(file, JSON.stringify(pipeline, null, 2));
    const sources = { builtins: [{ name: '@peftkit/steps', version: '0.1.0', module: stepsModule }, await importPlugin('@peftkit/lora', repoRoot())] };
    const runsDir = join(dir, 'runs');
    const first = await runPipeline(await preparePipeline(file, [], sources), { runsDir });
    const run = first.runDir;
    assert.equal(JSON.parse(readFileSync(join(run, 'status.json'), 'utf8')).state, 'succeeded');
    assert.deepEqual(readdirSync(join(run, 'fit', 'checkpoints')).sort(), ['latest', 'step-3', 'step-6']);
    assert.match(readFileSync(join(run, 'fit', 'loss.svg'), 'utf8'), /^<svg[^>]*>/);
    const md = readFileSync(join(run, 'score', 'report.md'), 'utf8');
    assert.match(md, /\|perplexity\|/);
    assert.match(md, /\n## Samples\n\n### Sample 1\n\nPrompt:\n\n```text\n[^`]+\n```\n\nWith the adapter:\n\n```text\n[^`]*\n```\n\nWithout the adapter:\n/);
    assert.ok(existsSync(join(run, 'out', 'adapter', 'adapter_model.safetensors')));
    const metrics = readFileSync(join(run, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    const trainRows = metrics.filter((m) => m.pipeline_step === 'fit' && 'loss' in m);
    assert.deepEqual(trainRows.map((m) => m.global_step), [2, 4, 6]);
    assert.equal(metrics.filter((m) => m.pipeline_step === 'fit' && 'eval_loss' in m).length, 2);
    const evalRow = metrics.find((m) => m.pipeline_step === 'score');
    assert.ok(evalRow.perplexity < evalRow.base_perplexity, `perplexity ${evalRow.perplexity} vs base ${evalRow.base_perplexity}`);

    // --resume reuses the run folder; train finds its final checkpoint and does no more steps.
    const again = await runPipeline(await preparePipeline(file, [], sources), { runsDir, resume: true });
    assert.equal(again.runDir, run);
    const log = readFileSync(join(run, 'run.log'), 'utf8');
    assert.match(log, /resumed from [^"]*step-6 at step 6/);
    const after = readFileSync(join(run, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    assert.equal(after.filter((m) => m.pipeline_step === 'fit' && 'loss' in m).length, 3, 'no new training rows');
    const evalAgain = after.filter((m) => m.pipeline_step === 'score').at(-1);
    assert.ok(Math.abs(evalAgain.perplexity - evalRow.perplexity) < 1e-9 * evalRow.perplexity);
  } finally {
    cleanup();
  }
});

test('gradient_checkpointing: the same losses and LoRA weights as without it, with dropout in the base and in LoRA', async () => {
  const { dir, cleanup } = scratch();
  try {
    const lines = Array.from({ length: 16 }, (_, i) => JSON.stringify({ text: Array.from({ length: 5 }, (_, k) => words[(i * 3 + k * (1 + (i % 3))) % words.length]).join(' ') }));
    writeFileSync(join(dir, 'data.jsonl'), lines.join('\n') + '\n');
    mkdirSync(join(dir, 'gpt2'));
    const modelDir = await tinyGpt2(join(dir, 'gpt2'), { dropout: 0.1, layers: 2 });
    const sources = { builtins: [{ name: '@peftkit/steps', version: '0.1.0', module: stepsModule }, await importPlugin('@peftkit/lora', repoRoot())], discover: false };
    const runOnce = async (checkpointing: boolean) => {
      const pipeline = {
        name: `ckpt-${checkpointing}`,
        seed: 5,
        backend: 'wasm',
        steps: {
          base: { kind: 'load', settings: { model: modelDir } },
          data: { kind: 'dataset', inputs: { tokenizer: 'base' }, settings: { path: 'data.jsonl', shape: 'text', max_length: 16 } },
          peft: { kind: 'inject', inputs: { model: 'base' }, settings: { method: 'lora', config: { r: 2, lora_alpha: 4, lora_dropout: 0.1, target_modules: ['c_attn', 'c_proj', 'c_fc'], fan_in_fan_out: true } } },
          fit: { kind: 'train', inputs: { model: 'peft', dataset: 'data' }, settings: { learning_rate: 0.02, max_steps: 4, per_device_train_batch_size: 4, save_steps: 0, logging_steps: 1, gradient_checkpointing: checkpointing } },
          out: { kind: 'export', inputs: { model: 'fit' }, settings: {} },
        },
      };
      const file = join(dir, `ckpt-${checkpointing}.json`);
      writeFileSync(file, JSON.stringify(pipeline, null, 2));
      const { runDir } = await runPipeline(await preparePipeline(file, [], sources), { runsDir: join(dir, 'runs') });
      const metrics = readFileSync(join(runDir, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
      const losses = metrics.filter((m) => m.pipeline_step === 'fit' && 'loss' in m).map((m) => m.loss as number);
      const log = readFileSync(join(runDir, 'run.log'), 'utf8');
      const { tensors } = readSafetensors(join(runDir, 'out', 'adapter', 'adapter_model.safetensors'));
      const weights = new Map([...tensors].map(([k, t]) => [k, Array.from(t.dataSync())]));
      for (const t of tensors.values()) t.dispose();
      return { losses, log, weights };
    };
    const plain = await runOnce(false);
    const ckpt = await runOnce(true);
    assert.match(ckpt.log, /gradient checkpointing: each block keeps only its input/);
    assert.equal(plain.losses.length, 4);
    for (let i = 0; i < 4; i++) assert.ok(Math.abs(plain.losses[i] - ckpt.losses[i]) < 1e-5, `step ${i + 1}: loss ${plain.losses[i]} vs ${ckpt.losses[i]}`);
    assert.deepEqual([...ckpt.weights.keys()], [...plain.weights.keys()]);
    for (const [k, w] of plain.weights) {
      const d = Math.max(...w.map((x, i) => Math.abs(x - ckpt.weights.get(k)![i])));
      assert.ok(d < 1e-5, `${k} differs by ${d}`);
    }
  } finally {
    cleanup();
  }
});

/** Pipelines over the tiny GPT-2 and word data in `dir`, with `plugin` installed: building blocks of the `inject.adapter` tests. */
async function adapterPipelines(dir: string, plugin: string) {
  const lines = Array.from({ length: 40 }, (_, i) => JSON.stringify({ text: Array.from({ length: 5 }, (_, k) => words[(i * 3 + k * (1 + (i % 3))) % words.length]).join(' ') }));
  writeFileSync(join(dir, 'data.jsonl'), lines.join('\n') + '\n');
  mkdirSync(join(dir, 'gpt2'));
  const modelDir = await tinyGpt2(join(dir, 'gpt2'));
  const sources = { builtins: [{ name: '@peftkit/steps', version: '0.1.0', module: stepsModule }, await importPlugin(plugin, repoRoot())], discover: false };
  const runsDir = join(dir, 'runs');
  const run = async (name: string, steps: Record<string, unknown>) => {
    const file = join(dir, `${name}.json`);
    writeFileSync(file, JSON.stringify({ name, seed: 3, backend: 'wasm', steps }, null, 2));
    return runPipeline(await preparePipeline(file, [], sources), { runsDir });
  };
  const evalRow = (runDir: string, step: string) => readFileSync(join(runDir, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l)).find((m) => m.pipeline_step === step);
  const base = { kind: 'load', settings: { model: modelDir } };
  const data = { kind: 'dataset', inputs: { tokenizer: 'base' }, settings: { path: 'data.jsonl', shape: 'text', max_length: 16 } };
  const fit = (model: string, steps: number) => ({ kind: 'train', inputs: { model, dataset: 'data' }, settings: { learning_rate: 0.02, max_steps: steps, per_device_train_batch_size: 4, save_steps: 0 } });
  const score = (model: string) => ({ kind: 'evaluate', inputs: { model, dataset: 'data' }, settings: { num_samples: 0 } });
  /** Loads `exported` trainable in a new pipeline: it must score `firstPpl` as its first run did, and training it further must lower that. */
  const continues = async (exported: string, firstPpl: number) => {
    const cont = await run('continue', {
      base, data,
      peft: { kind: 'inject', inputs: { model: 'base' }, settings: { adapter: exported, is_trainable: true } },
      before: score('peft'), fit: fit('peft', 6), score: score('fit'),
    });
    const before = evalRow(cont.runDir, 'before').perplexity;
    const after = evalRow(cont.runDir, 'score').perplexity;
    assert.ok(Math.abs(before - firstPpl) < 1e-6 * firstPpl, `loaded ${before} vs exported ${firstPpl}`);
    assert.ok(after < before, `perplexity ${before} -> ${after}`);
    return cont;
  };
  return { modelDir, sources, runsDir, run, evalRow, base, data, fit, score, continues };
}

test('inject with `adapter`: an AdapterHub bottleneck adapter exported by one pipeline is loaded by another, scores the same, and trains further', async () => {
  const { dir, cleanup } = scratch();
  try {
    const { base, data, fit, score, run, evalRow, continues } = await adapterPipelines(dir, '@peftkit/adapter');
    const first = await run('first', {
      base, data,
      peft: { kind: 'inject', inputs: { model: 'base' }, settings: { method: 'houlsby', config: { reduction_factor: 4 } } },
      fit: fit('peft', 3), score: score('fit'), out: { kind: 'export', inputs: { model: 'fit' }, settings: {} },
    });
    const exported = join(first.runDir, 'out', 'adapter');
    // AdapterHub's layout (config under "config", weights in adapter.safetensors), not HF PEFT's.
    assert.deepEqual(readdirSync(exported).sort(), ['adapter.safetensors', 'adapter_config.json', 'prompt_format.json']);
    const written = JSON.parse(readFileSync(join(exported, 'adapter_config.json'), 'utf8'));
    assert.equal(written.config.reduction_factor, 4);
    assert.equal(written.peft_type, undefined);
    const firstPpl = evalRow(first.runDir, 'score').perplexity;
    await continues(exported, firstPpl);
  } finally {
    cleanup();
  }
});

test('inject with `adapter`: a pipeline continues training an exported adapter, another loads it frozen and exports it merged, a misfit is refused before training', async () => {
  const { dir, cleanup } = scratch();
  try {
    const { base, data, fit, score, run, evalRow, continues, modelDir, sources, runsDir } = await adapterPipelines(dir, '@peftkit/lora');
    const first = await run('first', {
      base, data,
      peft: { kind: 'inject', inputs: { model: 'base' }, settings: { method: 'lora', config: { r: 2, lora_alpha: 4, target_modules: ['c_attn', 'c_proj'], fan_in_fan_out: true } } },
      fit: fit('peft', 3), score: score('fit'), out: { kind: 'export', inputs: { model: 'fit' }, settings: {} },
    });
    const exported = join(first.runDir, 'out', 'adapter');
    const firstPpl = evalRow(first.runDir, 'score').perplexity;

    // Continue: the loaded adapter scores what the first run's did, and training it further lowers the perplexity.
    const cont = await continues(exported, firstPpl);
    assert.match(readFileSync(join(cont.runDir, 'run.log'), 'utf8'), /loaded lora adapter \\"default\\" from [^"]* \(trainable\)/);

    // Frozen: training it is refused by name; merging and exporting it works, and the merged checkpoint gives the adapter's outputs.
    const frozenFile = join(dir, 'frozen.json');
    writeFileSync(frozenFile, JSON.stringify({ name: 'frozen', seed: 3, backend: 'wasm', steps: { base, data, peft: { kind: 'inject', inputs: { model: 'base' }, settings: { adapter: exported } }, fit: fit('peft', 1) } }));
    await assert.rejects(runPipeline(await preparePipeline(frozenFile, [], sources), { runsDir }), /adapter "default" is frozen/);
    const merge = await run('merge', {
      base, data,
      peft: { kind: 'inject', inputs: { model: 'base' }, settings: { adapter: exported } },
      score: score('peft'), out: { kind: 'export', inputs: { model: 'peft' }, settings: { merged: true } },
    });
    assert.ok(Math.abs(evalRow(merge.runDir, 'score').perplexity - firstPpl) < 1e-6 * firstPpl);
    const mergedDir = join(merge.runDir, 'out', 'adapter-merged');
    const merged = await loadPretrained(mergedDir);
    const withAdapter = await loadAdapters(await loadPretrained(modelDir), [{ name: 'a', path: exported }], createRegistry(sources.builtins).methods());
    const ids = tf.tensor2d([[1, 5, 9, 2, 7, 3]], [1, 6], 'int32');
    const d = tf.tidy(() => tf.max(tf.abs(tf.sub(merged.model.forward({ inputIds: ids }).logits, withAdapter.forward({ inputIds: ids }).logits))).dataSync()[0]);
    assert.ok(d < 1e-5, `merged checkpoint's logits differ from base + adapter by ${d}`);
    assert.ok(!Object.keys(readSafetensorsHeader(join(mergedDir, 'model.safetensors')).tensors).some((k) => k.includes('lora')));

    // An adapter for another shape: refused at the inject step with the first mismatches, before any training.
    mkdirSync(join(dir, 'wide'));
    manualSeed(1);
    const wide = createModel({ model_type: 'gpt2', vocab_size: 21, n_positions: 32, n_embd: 24, n_layer: 1, n_head: 2 }, 'causal-lm');
    savePretrained({ model: wide, source: 'wide' }, join(dir, 'wide'));
    wide.dispose();
    for (const f of ['vocab.json', 'merges.txt', 'tokenizer_config.json', 'special_tokens_map.json']) copyFileSync(join(hfFixture('ckpt-gpt2-tiny-vocab'), f), join(dir, 'wide', f));
    const misfit = join(dir, 'misfit.json');
    writeFileSync(misfit, JSON.stringify({ name: 'misfit', seed: 3, backend: 'wasm', steps: { base: { kind: 'load', settings: { model: join(dir, 'wide') } }, data, peft: { kind: 'inject', inputs: { model: 'base' }, settings: { adapter: exported, is_trainable: true } }, fit: fit('peft', 1) } }));
    await assert.rejects(runPipeline(await preparePipeline(misfit, [], sources), { runsDir }), (e: Error) => {
      assert.match(e.message, /does not fit the model from .*wide: 6 mismatches\n  - transformer\.h\.0\.attn\.c_attn: lora_A is \[2, 16\], so the adapter expects 16 input features, but the base's layer takes 24/);
      assert.equal((e as { details?: { pointer?: string } }).details?.pointer, '/steps/peft/settings/adapter');
      return true;
    });
    assert.ok(!existsSync(join(runsDir, 'misfit', 'latest', 'fit', 'checkpoints')), 'nothing trained');
  } finally {
    cleanup();
  }
});
