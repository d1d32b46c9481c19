/**
 * QLoRA against LoRA and full fine-tuning on the same Llama-shaped model (SmolLM-135M shapes,
 * random weights) on the WASM backend: what the base takes as stored, bits per base parameter,
 * peak memory during a training step, and step time.
 *
 *   node --conditions=peftkit-source --import tsx tools/bench/qlora-memory.ts [--batch 1] [--seq 64] [--steps 3] [--runs full,lora,qlora,qlora-blockwise] [--layers 30]
 *
 * `--layers` keeps SmolLM-135M's widths with fewer decoder layers (full fine-tuning of all 30 does
 * not fit in the 4 GiB WASM heap).
 *
 * Runs (each in its own process, so that peaks do not mix):
 * - full: every parameter trained (`full` method), AdamW;
 * - lora: float32 base, LoRA r 8, alpha 16, dropout 0.1 on all linear layers (`lora` method);
 * - qlora: the same LoRA on an NF4 + double-quantized base (blocksize 64), quantized after the
 *   float32 model was built, as a pipeline's load → quantize → inject does (`nf4` scheme, `qlora` method);
 * - qlora-blockwise: the same, the base built block by block with `createQuantizedModel`, so the
 *   float32 model never exists (its WASM heap does not remember it).
 * Each: build, measure the stored base, inject, one warm-up step, one profiled step (peak tensor
 * bytes), then `--steps` timed steps on the same batch (seeded random token ids, labels = ids).
 * Step time is never asserted anywhere; it is measured here on a shared machine.
 */
import * as tf from '@tensorflow/tfjs';
import { parseArgs } from 'node:util';
import { initBackend } from '@peftkit/core';
import { createModel, manualSeed, type PreTrainedModel } from '@peftkit/models';
import { loraMethod } from '@peftkit/lora';
import { createQuantizedModel, nf4Scheme, qloraMethod } from '@peftkit/qlora';
import { fullMethod } from '../../packages/steps/src/methods/full.js';
import { runCaseInChild } from './child-run.js';
import {
  LORA_CONFIG,
  NF4_CONFIG,
  SMOLLM_135M,
  baseStorage,
  countParams,
  mib,
  peakRssBytes,
  profiled,
  runMain,
  stderrLogger,
  totalBaseParams,
  trainingStep,
  wasmHeapBytes,
  type BaseStorage,
} from './qlora-common.js';

const { values: args } = parseArgs({
  options: {
    batch: { type: 'string', default: '1' },
    seq: { type: 'string', default: '64' },
    steps: { type: 'string', default: '3' },
    runs: { type: 'string', default: 'full,lora,qlora,qlora-blockwise' },
    lr: { type: 'string', default: '2e-4' },
    layers: { type: 'string', default: String(SMOLLM_135M.num_hidden_layers) },
  },
});
const MODEL = { ...SMOLLM_135M, num_hidden_layers: Number(args.layers) };
const B = Number(args.batch);
const T = Number(args.seq);
const STEPS = Number(args.steps);
const LR = Number(args.lr);
const RUNS = ['full', 'lora', 'qlora', 'qlora-blockwise'] as const;
type Run = (typeof RUNS)[number];

/** One run's figures (a child process prints it as one JSON line). */
interface Row {
  run: Run;
  buildSeconds: number;
  storage: BaseStorage;
  heapAfterBuild: number;
  trainable: number;
  warmupSeconds: number;
  peakTensorBytes: number;
  profiledSeconds: number;
  stepSeconds: number[];
  losses: number[];
  heapBytes: number;
  peakRss: number;
  /** WASM heap after the warm-up step (the first AdamW update creates the moments). */
  heapAfterWarmup: number;
  error?: string;
}

/** What the child was doing, and what it had measured, for a run that fails. */
let phase = 'start';
let partial: Partial<Row> = {};

async function measure(run: Run): Promise<Row> {
  phase = 'build';
  const logger = stderrLogger(`[${run}]`);
  manualSeed(0);
  const t0 = performance.now();
  let model: PreTrainedModel;
  if (run === 'qlora-blockwise') model = createQuantizedModel(MODEL, NF4_CONFIG, { task: 'causal-lm', logger }).model;
  else {
    model = createModel(MODEL, 'causal-lm');
    if (run === 'qlora') await nf4Scheme.quantize(model, NF4_CONFIG, { logger });
  }
  const buildSeconds = (performance.now() - t0) / 1000;
  const storage = baseStorage(model);
  const heapAfterBuild = wasmHeapBytes();
  partial = { buildSeconds, storage, heapAfterBuild };
  phase = 'inject';
  const ctx = { logger, seed: 0 };
  const handle = await (run === 'full' ? fullMethod.inject(model, {}, ctx) : run === 'lora' ? loraMethod.inject(model, { ...LORA_CONFIG }, ctx) : qloraMethod.inject(model, { ...LORA_CONFIG }, ctx));
  model.train();
  const params = handle.trainableParameters();
  const ids = tf.tidy(() => tf.randomUniformInt([B, T], 0, MODEL.vocab_size - 1, 1234)) as tf.Tensor2D;
  const step = trainingStep(model, params, ids, LR);
  const losses: number[] = [];
  phase = 'warm-up step';
  let t = performance.now();
  losses.push(step());
  const warmupSeconds = (performance.now() - t) / 1000;
  partial = { ...partial, trainable: countParams(params), warmupSeconds, losses: [...losses], heapAfterWarmup: wasmHeapBytes() };
  phase = 'profiled step';
  const p = await profiled(step);
  losses.push(p.result);
  phase = 'timed steps';
  const stepSeconds: number[] = [];
  for (let i = 0; i < STEPS; i++) {
    t = performance.now();
    losses.push(step());
    stepSeconds.push((performance.now() - t) / 1000);
  }
  return {
    run,
    buildSeconds,
    storage,
    heapAfterBuild,
    trainable: countParams(params),
    warmupSeconds,
    peakTensorBytes: p.peakBytes,
    profiledSeconds: p.seconds,
    stepSeconds,
    losses,
    heapBytes: wasmHeapBytes(),
    peakRss: peakRssBytes(),
    heapAfterWarmup: partial.heapAfterWarmup!,
  };
}

const LABEL: Record<Run, string> = {
  full: 'full fine-tuning (float32)',
  lora: 'LoRA (float32 base)',
  qlora: 'QLoRA (NF4 + DQ; quantized after a float32 build)',
  'qlora-blockwise': 'QLoRA (NF4 + DQ; built block by block)',
};

function table(rows: Row[]): string {
  const lines = [
    '| run | base parameters | base as stored: tensors + packed = MiB | bits / base parameter | bits / quantized parameter | trainable parameters | peak tensor MiB (step) | WASM heap MiB | peak RSS MiB | step s (mean) | loss (first → last) |',
    '|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|',
  ];
  for (const r of rows) {
    const s = r.storage;
    if (r.error) {
      const got = [
        s ? `base as stored ${mib(s.tensorBytes + s.quantBytes + s.quantTableBytes)} MiB` : '',
        r.warmupSeconds ? `warm-up step done in ${r.warmupSeconds.toFixed(1)} s (loss ${r.losses[0].toFixed(4)}), WASM heap after it ${mib(r.heapAfterWarmup)} MiB` : '',
      ].filter(Boolean);
      const oom = r.heapBytes > 4090 * 2 ** 20 ? 'out of WASM heap (the backend aborted; later errors follow from that) ' : '';
      lines.push(`| ${LABEL[r.run]} | ${oom}failed in the ${r.error}; WASM heap ${mib(r.heapBytes)} MiB (limit 4096), peak RSS ${mib(r.peakRss)} MiB${got.length ? `; before that: ${got.join('; ')}` : ''} |||||||||||`);
      continue;
    }
    const stored = s.tensorBytes + s.quantBytes + s.quantTableBytes;
    const mean = r.stepSeconds.reduce((a, b) => a + b, 0) / r.stepSeconds.length;
    lines.push(
      `| ${LABEL[r.run]} | ${(totalBaseParams(s) / 1e6).toFixed(2)} M | ${mib(s.tensorBytes)} + ${mib(s.quantBytes + s.quantTableBytes)} = ${mib(stored)} | ${((8 * stored) / totalBaseParams(s)).toFixed(3)} | ` +
        `${s.quantParams ? ((8 * s.quantBytes) / s.quantParams).toFixed(4) : '–'} | ${(r.trainable / 1e6).toFixed(2)} M | ${mib(r.peakTensorBytes)} | ${mib(r.heapBytes)} | ${mib(r.peakRss)} | ` +
        `${mean.toFixed(2)} | ${r.losses[0].toFixed(4)} → ${r.losses[r.losses.length - 1].toFixed(4)} |`,
    );
  }
  return lines.join('\n');
}

runMain(async () => {
  const child = process.env.PEFTKIT_QLORA_BENCH_RUN as Run | undefined;
  if (child) {
    await initBackend('wasm');
    let row: Row;
    try {
      row = await measure(child);
    } catch (e) {
      process.stderr.write(`${(e as Error).stack}\n`);
      row = { ...partial, run: child, error: `${phase}: ${(e as Error).message.split('\n')[0]}`, heapBytes: wasmHeapBytes(), peakRss: peakRssBytes() } as Row;
    }
    console.log(JSON.stringify(row));
    return;
  }
  const runs = args.runs!.split(',') as Run[];
  for (const r of runs) if (!RUNS.includes(r)) throw new Error(`unknown run "${r}"; choose from ${RUNS.join(', ')}`);
  const info = await initBackend('wasm');
  console.log(`backend: ${info.name} (${info.detail}); SmolLM-135M shapes (hidden 576, ${MODEL.num_hidden_layers} layers, 9 heads / 3 kv, intermediate 1536, vocab 49152, tied), random weights`);
  console.log(`batch ${B} × seq ${T}; LoRA r ${LORA_CONFIG.r}, alpha ${LORA_CONFIG.lora_alpha}, dropout ${LORA_CONFIG.lora_dropout}, all linear layers; AdamW lr ${LR}; step time: mean of ${STEPS} after a warm-up and a profiled step\n`);
  const rows: Row[] = [];
  for (const run of runs) {
    const res = runCaseInChild<Row>(import.meta.url, 'PEFTKIT_QLORA_BENCH_RUN', run);
    let row: Row;
    if ('row' in res) row = res.row;
    else {
      row = { run, error: `child exited with ${res.failed} and no result` } as Row;
    }
    rows.push(row);
    process.stderr.write(`${run}: ${JSON.stringify(row)}\n`);
  }
  console.log(table(rows));
});
