// End to end through the engine: load → dataset → inject (LoRA) → train → evaluate → export, then --resume.
import assert from 'node:assert/strict';
import { copyFileSync, existsSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { importPlugin, initBackend, preparePipeline, runPipeline } from '@peftkit/core';
import { createModel, manualSeed, savePretrained } from '@peftkit/models';
import stepsModule from '../module.js';
import { scratch } from '../training/testing/context.js';
import { hfFixture, repoRoot } from '@peftkit/models/testing';

const words = ['lowest', 'newer', 'wider', 'lower', 'slow', 'wide', 'new', 'low'];

/**
 * A random GPT-2 (n_embd 16, 1 layer) with the 21-token tokenizer of the `ckpt-gpt2-tiny-vocab`
 * fixture: that checkpoint's own n_embd of 2 is too narrow to learn anything measurable.
 */
async function tinyGpt2(folder: string): Promise<string> {
  await initBackend('wasm');
  manualSeed(11);
  const model = createModel({ model_type: 'gpt2', vocab_size: 21, n_positions: 32, n_embd: 16, n_layer: 1, n_head: 2, bos_token_id: 20, eos_token_id: 20, resid_pdrop: 0, embd_pdrop: 0, attn_pdrop: 0 }, 'causal-lm');
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
