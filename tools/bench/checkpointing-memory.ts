/**
 * What gradient checkpointing (the train step's `gradient_checkpointing`, `nn/checkpoint.ts`) saves:
 * peak memory of one training step with and without it, on the WASM backend, random weights.
 *
 *   node --conditions=peftkit-source --import tsx tools/bench/checkpointing-memory.ts [--batch 4] [--seq 512] [--runs gpt2-lora,gpt2-lora-ckpt,...]
 *
 * Runs (each in its own process: the WASM heap never shrinks, so peaks must not mix):
 * - gpt2-lora / gpt2-lora-ckpt: GPT-2 small's shapes (124 M parameters, HF `gpt2` config: dropout
 *   0.1), LoRA r 8, alpha 16, dropout 0.05 on `c_attn` and `c_proj`, AdamW;
 * - smollm-lora / smollm-lora-ckpt: SmolLM-135M's shapes, LoRA r 8, alpha 16, dropout 0.1 on all
 *   linear layers (qlora-common's LORA_CONFIG), AdamW;
 * - gpt2-full / gpt2-full-ckpt: full fine-tuning of GPT-2 small (`full` method: every parameter,
 *   AdamW's two moments per parameter).
 * Each builds the model, injects, and runs one training step (forward, backward, AdamW update:
 * the first update also allocates the moments) under `tf.profile`; then it reports the step's peak
 * tensor bytes, the WASM heap (its high-water mark) and the process's peak RSS. A run that runs out
 * of the 4 GiB heap reports where it failed.
 */
import * as tf from '@tensorflow/tfjs';
import { parseArgs } from 'node:util';
import { initBackend } from '@peftkit/core';
import { createModel, manualSeed, type ModelConfig } from '@peftkit/models';
import { loraMethod } from '@peftkit/lora';
import { fullMethod } from '../../packages/steps/src/methods/full.js';
import { LORA_CONFIG, SMOLLM_135M, countParams, mib, peakRssBytes, profiled, runMain, stderrLogger, trainingStep, wasmHeapBytes } from './qlora-common.js';
import { runCaseInChild } from './child-run.js';

/** GPT-2 small (openai-community/gpt2 config.json). */
const GPT2_SMALL = { model_type: 'gpt2', vocab_size: 50257, n_positions: 1024, n_embd: 768, n_layer: 12, n_head: 12, resid_pdrop: 0.1, embd_pdrop: 0.1, attn_pdrop: 0.1 } satisfies ModelConfig;
const GPT2_LORA = { r: 8, lora_alpha: 16, lora_dropout: 0.05, target_modules: ['c_attn', 'c_proj'], fan_in_fan_out: true };

const RUNS = ['gpt2-lora', 'gpt2-lora-ckpt', 'smollm-lora', 'smollm-lora-ckpt', 'gpt2-full', 'gpt2-full-ckpt'] as const;
type Run = (typeof RUNS)[number];

const { values: args } = parseArgs({
  options: {
    batch: { type: 'string', default: '4' },
    seq: { type: 'string', default: '512' },
    runs: { type: 'string', default: RUNS.join(',') },
    lr: { type: 'string', default: '2e-4' },
  },
});
const B = Number(args.batch);
const T = Number(args.seq);

interface Row {
  run: Run;
  trainable?: number;
  heapAfterBuild?: number;
  peakTensorBytes?: number;
  stepSeconds?: number;
  loss?: number;
  heapBytes: number;
  peakRss: number;
  error?: string;
}

let phase = 'start';
let partial: Partial<Row> = {};

async function measure(run: Run): Promise<Row> {
  const logger = stderrLogger(`[${run}]`);
  manualSeed(0);
  phase = 'build';
  const config = run.startsWith('gpt2') ? GPT2_SMALL : SMOLLM_135M;
  const model = createModel(config, 'causal-lm');
  partial = { heapAfterBuild: wasmHeapBytes() };
  phase = 'inject';
  const ctx = { logger, seed: 0 };
  const handle = await (run.startsWith('gpt2-full') ? fullMethod.inject(model, {}, ctx) : loraMethod.inject(model, run.startsWith('gpt2') ? { ...GPT2_LORA } : { ...LORA_CONFIG }, ctx));
  if (run.endsWith('-ckpt')) model.gradientCheckpointingEnable();
  model.train();
  const params = handle.trainableParameters();
  partial.trainable = countParams(params);
  const ids = tf.tidy(() => tf.randomUniformInt([B, T], 0, (config.vocab_size as number) - 1, 1234)) as tf.Tensor2D;
  const step = trainingStep(model, params, ids, Number(args.lr));
  phase = 'training step';
  const p = await profiled(step);
  return { run, ...partial, peakTensorBytes: p.peakBytes, stepSeconds: p.seconds, loss: p.result, heapBytes: wasmHeapBytes(), peakRss: peakRssBytes() };
}

const LABEL: Record<Run, string> = {
  'gpt2-lora': 'GPT-2 small, LoRA',
  'gpt2-lora-ckpt': 'GPT-2 small, LoRA, gradient checkpointing',
  'smollm-lora': 'SmolLM-135M shapes, LoRA',
  'smollm-lora-ckpt': 'SmolLM-135M shapes, LoRA, gradient checkpointing',
  'gpt2-full': 'GPT-2 small, full fine-tuning (AdamW)',
  'gpt2-full-ckpt': 'GPT-2 small, full fine-tuning (AdamW), gradient checkpointing',
};

function table(rows: Row[]): string {
  const lines = ['| run | trainable parameters | peak tensor MiB (step) | WASM heap MiB | peak RSS MiB | step s | loss |', '|---|---:|---:|---:|---:|---:|---:|'];
  for (const r of rows) {
    if (r.error) {
      const oom = r.heapBytes > 4090 * 2 ** 20 ? 'out of the 4 GiB WASM heap: ' : '';
      lines.push(`| ${LABEL[r.run]} | ${r.trainable ? `${(r.trainable / 1e6).toFixed(2)} M` : '?'} | ${oom}failed in the ${r.error} | ${mib(r.heapBytes)} | ${mib(r.peakRss)} | – | – |`);
      continue;
    }
    lines.push(`| ${LABEL[r.run]} | ${(r.trainable! / 1e6).toFixed(2)} M | ${mib(r.peakTensorBytes!)} | ${mib(r.heapBytes)} | ${mib(r.peakRss)} | ${r.stepSeconds!.toFixed(1)} | ${r.loss!.toFixed(4)} |`);
  }
  return lines.join('\n');
}

runMain(async () => {
  const child = process.env.PEFTKIT_CKPT_BENCH_RUN as Run | undefined;
  if (child) {
    await initBackend('wasm');
    let row: Row;
    try {
      row = await measure(child);
    } catch (e) {
      process.stderr.write(`${(e as Error).stack}\n`);
      row = { ...partial, run: child, error: `${phase}: ${(e as Error).message.split('\n')[0]}`, heapBytes: wasmHeapBytes(), peakRss: peakRssBytes() };
    }
    console.log(JSON.stringify(row));
    return;
  }
  const runs = args.runs!.split(',') as Run[];
  for (const r of runs) if (!RUNS.includes(r)) throw new Error(`unknown run "${r}"; choose from ${RUNS.join(', ')}`);
  const info = await initBackend('wasm');
  console.log(`backend: ${info.name} (${info.detail}); batch ${B} × seq ${T}; one training step per run, random weights\n`);
  const rows: Row[] = [];
  for (const run of runs) {
    const res = runCaseInChild<Row>(import.meta.url, 'PEFTKIT_CKPT_BENCH_RUN', run);
    let row: Row;
    if ('row' in res) row = res.row;
    else {
      row = { run, error: `child (exited with ${res.failed}, no result)`, heapBytes: 0, peakRss: 0 };
    }
    rows.push(row);
    process.stderr.write(`${run}: ${JSON.stringify(row)}\n`);
  }
  console.log(table(rows));
});
