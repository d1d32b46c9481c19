/**
 * The QLoRA headline run: a Llama-shaped model of 1.1 billion parameters (TinyLlama-1.1B shapes,
 * seeded random weights) trained with QLoRA on the WASM backend, whose float32 weights (4.4 GB)
 * would not fit in the 4 GiB WASM heap.
 *
 *   node --conditions=peftkit-source --import tsx tools/bench/qlora-1b.ts [--steps 3] [--seq 32] [--layers 22] [--lr 1e-3]
 *
 * The base is built block by block with `createQuantizedModel` (@peftkit/qlora): each decoder
 * layer's seven linear layers are made in float32, quantized to NF4 with double quantization
 * (blocksize 64) and their float32 weights freed before the next layer is made, so no float32 copy
 * of the model ever exists. `embed_tokens` and `lm_head` stay float32 (2 × 262 MB), as in QLoRA.
 * Then the `qlora` method injects LoRA (r 8, alpha 16, dropout 0.1, all linear layers) and AdamW
 * trains `--steps` steps at batch 1 × `--seq` tokens on one seeded batch (labels = ids). The first
 * step runs under tf.profile (peak tensor bytes); each step prints its loss, time, tensor bytes, WASM
 * heap and peak RSS as it finishes, so a run that dies still shows how far it got.
 */
import * as tf from '@tensorflow/tfjs';
import { parseArgs } from 'node:util';
import { initBackend } from '@peftkit/core';
import { manualSeed } from '@peftkit/models';
import { createQuantizedModel, qloraMethod, quantizedLayers, type Layout } from '@peftkit/qlora';
import { LORA_CONFIG, NF4_CONFIG, TINYLLAMA_1B, baseStorage, countParams, mib, peakRssBytes, profiled, runMain, stderrLogger, totalBaseParams, trainingStep, wasmHeapBytes } from './qlora-common.js';

const { values: args } = parseArgs({
  options: {
    steps: { type: 'string', default: '3' },
    seq: { type: 'string', default: '32' },
    layers: { type: 'string', default: String(TINYLLAMA_1B.num_hidden_layers) },
    lr: { type: 'string', default: '1e-3' },
    seed: { type: 'string', default: '0' },
  },
});
const STEPS = Number(args.steps);
const T = Number(args.seq);
const LR = Number(args.lr);
const config = { ...TINYLLAMA_1B, num_hidden_layers: Number(args.layers) };

/** Now, for a progress line: tensors, heap, peak RSS. */
function memLine(): string {
  return `tf.memory ${mib(tf.memory().numBytes)} MiB, WASM heap ${mib(wasmHeapBytes())} MiB, peak RSS ${mib(peakRssBytes())} MiB`;
}

runMain(async () => {
  const info = await initBackend('wasm');
  const started = performance.now();
  const elapsed = () => `${((performance.now() - started) / 1000).toFixed(0)} s`;
  console.log(`backend: ${info.name} (${info.detail}); ${new Date().toISOString()}`);
  console.log(`model: TinyLlama-1.1B shapes (hidden ${config.hidden_size}, ${config.num_hidden_layers} layers, ${config.num_attention_heads} heads / ${config.num_key_value_heads} kv, intermediate ${config.intermediate_size}, vocab ${config.vocab_size}, untied), random weights, seed ${args.seed}`);
  const logger = stderrLogger('[qlora-1b]');
  manualSeed(Number(args.seed));

  // 1. Build and quantize block by block.
  const t0 = performance.now();
  const { model, report } = createQuantizedModel(config, NF4_CONFIG, {
    task: 'causal-lm',
    logger,
    onBlockDone: (p) => console.log(`  built and quantized ${p.slice(0, -1)} at ${elapsed()}: ${memLine()}`),
  });
  const buildSeconds = (performance.now() - t0) / 1000;
  const s = baseStorage(model);
  const heapAfterBuild = wasmHeapBytes();
  const rssAfterBuild = peakRssBytes();
  const stored = s.tensorBytes + s.quantBytes + s.quantTableBytes;
  console.log(`built in ${buildSeconds.toFixed(1)} s: ${(totalBaseParams(s) / 1e9).toFixed(3)} B parameters (${(s.quantParams / 1e9).toFixed(3)} B quantized in ${s.quantLayers} layers); ${memLine()}`);
  console.log(`base as stored: ${mib(s.tensorBytes)} MiB float32 tensors + ${mib(s.quantBytes + s.quantTableBytes)} MiB packed = ${mib(stored)} MiB (${((8 * stored) / totalBaseParams(s)).toFixed(3)} bits per base parameter; quantized layers ${report.bits_per_parameter.toFixed(4)} bits, ${report.bits_per_parameter_with_tables.toFixed(4)} with code tables); float32 would be ${mib(totalBaseParams(s) * 4)} MiB`);

  // 2. Inject QLoRA.
  const handle = await qloraMethod.inject(model, { ...LORA_CONFIG }, { logger, seed: Number(args.seed) });
  model.train();
  const params = handle.trainableParameters();
  console.log(`qlora: ${(countParams(params) / 1e6).toFixed(2)} M trainable parameters (${((100 * countParams(params)) / totalBaseParams(s)).toFixed(3)} % of the base)`);

  // 3. Train.
  const ids = tf.tidy(() => tf.randomUniformInt([1, T], 0, config.vocab_size - 1, 1234)) as tf.Tensor2D;
  const step = trainingStep(model, params, ids, LR);
  const rows: { step: number; loss: number; seconds: number; peak?: number; tensors: number; heap: number; rss: number }[] = [];
  for (let i = 1; i <= STEPS; i++) {
    let loss: number;
    let seconds: number;
    let peak: number | undefined;
    if (i === 1) {
      const p = await profiled(step);
      [loss, seconds, peak] = [p.result, p.seconds, p.peakBytes];
    } else {
      const t = performance.now();
      loss = step();
      seconds = (performance.now() - t) / 1000;
    }
    rows.push({ step: i, loss, seconds, peak, tensors: tf.memory().numBytes, heap: wasmHeapBytes(), rss: peakRssBytes() });
    console.log(`step ${i}: loss ${loss.toFixed(4)}, ${seconds.toFixed(1)} s${peak ? `, peak tensor bytes ${mib(peak)} MiB (profiled step)` : ''}; ${memLine()}; total ${elapsed()}`);
  }

  // 4. What dequantization alone costs: one pass over every quantized layer in each layout (the
  // forward pass dequantizes to [in, out], the backward pass to [out, in]).
  const layers = quantizedLayers(model).map(([, q]) => q.weight);
  const dq: Record<Layout, number> = { 'in-out': 0, 'out-in': 0 };
  for (const layout of ['in-out', 'out-in'] as const) {
    const t = performance.now();
    for (const w of layers) w.dequantize(layout);
    dq[layout] = (performance.now() - t) / 1000;
  }
  console.log(`dequantization alone, all ${layers.length} layers: ${dq['in-out'].toFixed(1)} s to [in, out] (forward), ${dq['out-in'].toFixed(1)} s to [out, in] (backward)`);

  console.log('\n| quantity | value |\n|---|---:|');
  console.log(`| base parameters (quantized / float32) | ${(totalBaseParams(s) / 1e9).toFixed(3)} B (${(s.quantParams / 1e9).toFixed(3)} B / ${(s.floatParams / 1e6).toFixed(1)} M) |`);
  console.log(`| base as float32 (would be) | ${mib(totalBaseParams(s) * 4)} MiB |`);
  console.log(`| base as stored: float32 tensors + packed 4-bit | ${mib(s.tensorBytes)} + ${mib(s.quantBytes + s.quantTableBytes)} = ${mib(stored)} MiB |`);
  console.log(`| bits per base parameter, as stored | ${((8 * stored) / totalBaseParams(s)).toFixed(3)} |`);
  console.log(`| bits per quantized parameter (codes + scales + nested scales) | ${report.bits_per_parameter.toFixed(4)} |`);
  console.log(`| build + quantize, block by block | ${buildSeconds.toFixed(1)} s; WASM heap ${mib(heapAfterBuild)} MiB, peak RSS ${mib(rssAfterBuild)} MiB |`);
  console.log(`| trainable (LoRA r ${LORA_CONFIG.r}) | ${(countParams(params) / 1e6).toFixed(2)} M |`);
  console.log(`| dequantizing every quantized layer once (JavaScript), forward layout + backward layout | ${dq['in-out'].toFixed(1)} s + ${dq['out-in'].toFixed(1)} s |`);
  console.log(`| peak tensor bytes in a step (tf.profile) | ${mib(rows[0]?.peak ?? 0)} MiB |`);
  console.log(`| WASM heap at the end (its high-water mark) | ${mib(wasmHeapBytes())} MiB |`);
  console.log(`| peak RSS of the process | ${mib(peakRssBytes())} MiB |`);
  console.log('\n| step | loss | seconds | tf.memory MiB after | WASM heap MiB | peak RSS MiB |\n|---:|---:|---:|---:|---:|---:|');
  for (const r of rows) console.log(`| ${r.step} | ${r.loss.toFixed(4)} | ${r.seconds.toFixed(1)}${r.peak ? ' (profiled)' : ''} | ${mib(r.tensors)} | ${mib(r.heap)} | ${mib(r.rss)} |`);
  console.log(`\ntotal ${elapsed()}`);
});
