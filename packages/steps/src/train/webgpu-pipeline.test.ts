// A LoRA pipeline end to end on the WebGPU backend (llvmpipe through Dawn's OpenGL ES backend where there is no
// GPU): load → dataset → inject → train (clipping, checkpoints, evaluation) → evaluate (generation) → export → generate. The
// same pipeline on WASM gives the same losses. Own process: tfjs's backend is global.
import assert from 'node:assert/strict';
import { copyFileSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { importPlugin, initBackend, preparePipeline, runPipeline, webgpuUnavailable } from '@peftkit/core';
import { createModel, manualSeed, readSafetensors, savePretrained } from '@peftkit/models';
import stepsModule from '../module.js';
import { scratch } from '../training/testing/context.js';
import { hfFixture, repoRoot } from '@peftkit/models/testing';

const reason = await webgpuUnavailable();
if (reason) console.log(`# SKIP WebGPU pipeline: ${reason}`);

const words = ['lowest', 'newer', 'wider', 'lower', 'slow', 'wide', 'new', 'low'];

test('a LoRA pipeline trains, evaluates and exports on webgpu with the losses of the same run on WASM', { skip: reason }, async () => {
  const { dir, cleanup } = scratch();
  try {
    const lines = Array.from({ length: 24 }, (_, i) => JSON.stringify({ text: Array.from({ length: 5 }, (_, k) => words[(i * 3 + k * (1 + (i % 3))) % words.length]).join(' ') }));
    writeFileSync(join(dir, 'data.jsonl'), lines.join('\n') + '\n');
    const modelDir = join(dir, 'gpt2');
    mkdirSync(modelDir);
    await initBackend('wasm');
    manualSeed(11);
    const model = createModel({ model_type: 'gpt2', vocab_size: 21, n_positions: 32, n_embd: 16, n_layer: 1, n_head: 2, bos_token_id: 20, eos_token_id: 20, resid_pdrop: 0, embd_pdrop: 0, attn_pdrop: 0 }, 'causal-lm');
    savePretrained({ model, source: 'tiny' }, modelDir);
    model.dispose();
    for (const f of ['vocab.json', 'merges.txt', 'tokenizer_config.json', 'special_tokens_map.json']) copyFileSync(join(hfFixture('ckpt-gpt2-tiny-vocab'), f), join(modelDir, f));

    const sources = { builtins: [{ name: '@peftkit/steps', version: '0.1.0', module: stepsModule }, await importPlugin('@peftkit/lora', repoRoot())], discover: false };
    const runOn = async (backend: string) => {
      const pipeline = {
        name: `tiny-lora-${backend}`,
        seed: 3,
        backend,
        steps: {
          base: { kind: 'load', settings: { model: modelDir } },
          data: { kind: 'dataset', inputs: { tokenizer: 'base' }, settings: { path: 'data.jsonl', shape: 'text', max_length: 16 } },
          peft: { kind: 'inject', inputs: { model: 'base' }, settings: { method: 'lora', config: { r: 2, lora_alpha: 4, target_modules: ['c_attn', 'c_proj'], fan_in_fan_out: true } } },
          fit: { kind: 'train', inputs: { model: 'peft', dataset: 'data' }, settings: { learning_rate: 0.02, max_steps: 4, per_device_train_batch_size: 4, save_steps: 2, logging_steps: 1, max_grad_norm: 0.5 } },
          score: { kind: 'evaluate', inputs: { model: 'fit', dataset: 'data' }, settings: { num_samples: 2, max_new_tokens: 3 } },
          out: { kind: 'export', inputs: { model: 'fit' }, settings: {} },
          gen: { kind: 'generate', inputs: { model: 'fit' }, settings: { prompts: [' lower', ' new'], max_new_tokens: 4 } },
        },
      };
      const file = join(dir, `${pipeline.name}.json`);
      writeFileSync(file, JSON.stringify(pipeline, null, 2));
      const r = await runPipeline(await preparePipeline(file, [], sources), { runsDir: join(dir, 'runs') });
      const metrics = readFileSync(join(r.runDir, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
      return { run: r.runDir, backend: r.backend, metrics };
    };
    const gpu = await runOn('webgpu');
    const cpu = await runOn('wasm');

    assert.equal(gpu.backend.name, 'webgpu');
    assert.equal(JSON.parse(readFileSync(join(gpu.run, 'status.json'), 'utf8')).state, 'succeeded');
    const env = JSON.parse(readFileSync(join(gpu.run, 'environment.json'), 'utf8'));
    assert.equal(env.backend, 'webgpu');
    assert.ok(env.gpuAdapter.device, 'environment.json names the adapter');
    const logged = readFileSync(join(gpu.run, 'run.log'), 'utf8').trim().split('\n').map((l) => JSON.parse(l).message as string);
    assert.ok(logged.includes(`GPU adapter: vendor ${env.gpuAdapter.vendor || '(none given)'}, device ${env.gpuAdapter.device}, driver ${env.gpuAdapter.description} (Dawn's ${env.gpuAdapter.dawnBackend} backend${env.gpuAdapter.software ? ', software' : ''})`), 'run.log names the adapter');

    const rows = (m: Record<string, number | string>[]) => m.filter((r) => r.pipeline_step === 'fit' && 'loss' in r);
    const [g, c] = [rows(gpu.metrics), rows(cpu.metrics)] as Record<string, number>[][];
    assert.deepEqual(g.map((r) => r.global_step), [1, 2, 3, 4]);
    for (let i = 0; i < c.length; i++) {
      assert.ok(Math.abs(g[i].loss - c[i].loss) <= 1e-4 * c[i].loss, `step ${i + 1}: loss ${g[i].loss} on webgpu vs ${c[i].loss} on wasm`);
      assert.ok(Math.abs(g[i].grad_norm - c[i].grad_norm) <= 1e-4 * c[i].grad_norm, `step ${i + 1}: grad_norm ${g[i].grad_norm} vs ${c[i].grad_norm}`);
    }
    const [ge, ce] = [gpu.metrics.find((m) => m.pipeline_step === 'score'), cpu.metrics.find((m) => m.pipeline_step === 'score')];
    assert.ok(Math.abs(ge.perplexity - ce.perplexity) <= 1e-4 * ce.perplexity, `perplexity ${ge.perplexity} vs ${ce.perplexity}`);
    assert.ok(ge.perplexity < ge.base_perplexity, `the adapter learned: perplexity ${ge.perplexity} vs base ${ge.base_perplexity}`);
    assert.match(readFileSync(join(gpu.run, 'score', 'report.md'), 'utf8'), /\nWith the adapter:\n\n```text\n[^`]*\n```\n/);
    assert.ok(existsSync(join(gpu.run, 'fit', 'checkpoints', 'step-4', 'model.safetensors')));

    // The generate step continues the prompts with the same tokens.
    const gens = (run: string) => readFileSync(join(run, 'gen', 'generations.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l).generation);
    assert.deepEqual(gens(gpu.run), gens(cpu.run));
    assert.equal(gens(gpu.run).length, 2);

    // The exported adapters hold the same numbers.
    const read = (run: string) => readSafetensors(join(run, 'out', 'adapter', 'adapter_model.safetensors')).tensors;
    const [ga, ca] = [read(gpu.run), read(cpu.run)];
    assert.deepEqual([...ga.keys()].sort(), [...ca.keys()].sort());
    for (const [k, t] of ca) {
      const a = ga.get(k)!.dataSync();
      const b = t.dataSync();
      const scale = Math.max(...Array.from(b, Math.abs));
      const diff = Math.max(...Array.from(b, (x, i) => Math.abs(x - a[i])));
      assert.ok(diff <= 1e-4 * scale, `${k}: max |diff| ${diff} vs scale ${scale}`);
    }
  } finally {
    cleanup();
  }
});
