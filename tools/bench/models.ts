/**
 * Forward and training-step throughput and memory of GPT-2-small-shaped (124M) and
 * SmolLM-135M-shaped (Llama, GQA) models on the WASM backend, random weights.
 *
 *   node --conditions=peftkit-source --import tsx tools/bench/models.ts [--batch 2] [--seq 128] [--steps 2] [--models gpt2,llama]
 *
 * "train (all params)" is one forward + backward pass (tf.variableGrads) over every parameter, as
 * full fine-tuning needs; "train (LoRA-like grads)" requests gradients of the attention projections
 * only (the backward pass still runs through the whole network, as with LoRA). No optimizer update.
 * Tokens/s counts batch × seq per pass. Each model runs in its own process, so that exhausting the
 * 4 GiB WASM heap fails that model's remaining phases only. Memory is sampled at phase boundaries
 * (JavaScript cannot sample during a synchronous kernel): peak process RSS (includes the WASM heap,
 * which never shrinks) and peak tf.memory().numBytes (it counts a buffer once per tensor sharing
 * it, so it overstates). Prints a Markdown table; speed is measured here, never asserted in tests.
 */
import * as tf from '@tensorflow/tfjs';
import { parseArgs } from 'node:util';
import { spawnSync } from 'node:child_process';
import { initBackend } from '@peftkit/core';
import { createModel, generate, manualSeed, type ModelConfig, type PreTrainedModel } from '@peftkit/models';

const { values: args } = parseArgs({
  options: { batch: { type: 'string', default: '2' }, seq: { type: 'string', default: '128' }, steps: { type: 'string', default: '2' }, models: { type: 'string', default: 'gpt2,llama' } },
});
const B = Number(args.batch);
const T = Number(args.seq);
const STEPS = Number(args.steps);

const CONFIGS: Record<string, { label: string; config: ModelConfig; loraLike: RegExp }> = {
  gpt2: {
    label: 'GPT-2 small (768 × 12 layers, vocab 50257)',
    config: { model_type: 'gpt2', vocab_size: 50257, n_positions: 1024, n_embd: 768, n_layer: 12, n_head: 12 },
    loraLike: /\.attn\.c_attn\.weight$/,
  },
  llama: {
    label: 'SmolLM-135M shape (Llama: 576 × 30 layers, 9 heads / 3 kv, vocab 49152, tied)',
    config: { model_type: 'llama', vocab_size: 49152, hidden_size: 576, intermediate_size: 1536, num_hidden_layers: 30, num_attention_heads: 9, num_key_value_heads: 3, tie_word_embeddings: true, max_position_embeddings: 2048, rope_theta: 10000 },
    loraLike: /\.self_attn\.(q|v)_proj\.weight$/,
  },
};

let peakRss = 0;
let peakTensorBytes = 0;
function sample(): void {
  peakRss = Math.max(peakRss, process.memoryUsage().rss);
  peakTensorBytes = Math.max(peakTensorBytes, tf.memory().numBytes);
}
const MiB = (b: number) => (b / 2 ** 20).toFixed(0);

function lmLoss(model: PreTrainedModel, ids: tf.Tensor2D): tf.Scalar {
  const logits = model.forward({ inputIds: ids }).logits as tf.Tensor3D;
  const V = logits.shape[2];
  const labels = tf.oneHot(tf.slice(ids, [0, 1], [B, T - 1]).cast('int32'), V);
  const loss = tf.neg(tf.mean(tf.sum(tf.mul(tf.logSoftmax(tf.slice(logits, [0, 0, 0], [B, T - 1, V])), labels), -1))) as tf.Scalar;
  sample(); // the whole forward pass is alive here, kept for the backward pass
  return loss;
}

/** Mean seconds of `fn` over STEPS runs after one warm-up. */
function time(fn: () => void): number {
  fn();
  const t0 = performance.now();
  for (let i = 0; i < STEPS; i++) fn();
  return (performance.now() - t0) / STEPS / 1000;
}

/** One model's measurements; phases that ran out of memory say so. Runs in its own process (see below). */
async function measure(key: string): Promise<Record<string, string>> {
  const spec = CONFIGS[key];
  const row: Record<string, string> = { model: spec.label };
  const tok = B * T;
  try {
    manualSeed(0);
    const t0 = performance.now();
    const model = createModel(spec.config, 'causal-lm');
    row.build = ((performance.now() - t0) / 1000).toFixed(1);
    row.params = `${(model.numParameters() / 1e6).toFixed(1)} M`;
    sample();
    const ids = tf.randomUniformInt([B, T], 0, (spec.config.vocab_size as number) - 1) as tf.Tensor2D;
    const fwd = time(() => {
      const out = model.forward({ inputIds: ids });
      out.logits.dataSync();
      sample();
      tf.dispose(out as unknown as tf.TensorContainer);
    });
    row.forward = (tok / fwd).toFixed(0);
    const prompt = [Array.from({ length: 16 }, (_, i) => i + 1)];
    row.generate = (8 / time(() => (generate(model, prompt, { maxNewTokens: 8, eosTokenId: null }), sample()))).toFixed(1);
    model.train();
    const step = (vars: tf.Variable[]) => () => {
      const { value, grads } = tf.variableGrads(() => lmLoss(model, ids), vars);
      value.dataSync();
      sample();
      value.dispose();
      tf.dispose(grads);
    };
    // Least memory first, so that a heap exhausted by full fine-tuning still leaves the other figures.
    const lora = model.trainableParameters().filter(([n]) => spec.loraLike.test(n)).map(([, v]) => v);
    row.lora = (tok / time(step(lora))).toFixed(0);
    row.full = (tok / time(step(model.trainableParameters().map(([, v]) => v)))).toFixed(0);
  } catch (e) {
    row.error = (e as Error).message.split('\n')[0];
  }
  row.rss = MiB(peakRss);
  row.tensors = MiB(peakTensorBytes);
  return row;
}

const child = process.env.PEFTKIT_BENCH_CHILD;
if (child) {
  // A model per process: running out of the 4 GiB WASM heap aborts the module, not the whole benchmark.
  await initBackend('wasm');
  console.log(JSON.stringify(await measure(child)));
} else {
  const info = await initBackend('wasm');
  console.log(`backend: ${info.name} (${info.detail}); batch ${B} × seq ${T} = ${B * T} tokens per pass; mean of ${STEPS} after one warm-up\n`);
  console.log('| model | parameters | build s | forward tok/s | generate tok/s (16-token prompt + 8 new, cached) | train tok/s (LoRA-like grads) | train tok/s (all params) | peak RSS MiB | peak tf.memory().numBytes MiB |');
  console.log('|---|---:|---:|---:|---:|---:|---:|---:|---:|');
  for (const key of args.models!.split(',')) {
    if (!CONFIGS[key]) throw new Error(`unknown model "${key}"; choose from ${Object.keys(CONFIGS).join(', ')}`);
    const r = spawnSync(process.execPath, [...process.execArgv, ...process.argv.slice(1)], { env: { ...process.env, PEFTKIT_BENCH_CHILD: key }, encoding: 'utf8', maxBuffer: 1 << 26 });
    const line = r.stdout.split('\n').reverse().find((l) => l.startsWith('{'));
    const row = line ? JSON.parse(line) : { model: CONFIGS[key].label, error: `exit ${r.status}: ${r.stderr.split('\n').find((l) => /Error/.test(l)) ?? 'no output'}` };
    const cell = (k: string) => row[k] ?? (row.error ? 'failed' : '');
    console.log(`| ${row.model} | ${cell('params')} | ${cell('build')} | ${cell('forward')} | ${cell('generate')} | ${cell('lora')} | ${cell('full')} | ${row.rss ?? ''} | ${row.tensors ?? ''} |`);
    if (row.error) console.log(`\n${key}: ${row.error}\n`);
  }
}
