/**
 * Memory of serving many adapters on one base: each extra LoRA adapter should cost its own tensors,
 * not another copy of the base.
 *
 *   node --conditions=peftkit-source --import tsx tools/bench/multi-adapter.ts [--adapters 1,2,4,8] [--vocab 50257]
 *
 * The base is a GPT-2-small-shaped model (n_embd 768, 12 layers, random weights; `--vocab` shrinks
 * only the embedding table); the adapter is the real HF PEFT LoRA adapter of
 * `../shared/fixtures/hf/gpt2-lora-tigrinya` (r 8 on c_attn, attn.c_proj and mlp.c_proj of all 12
 * layers, 811,008 parameters), loaded N times under different names with `loadAdapters`. Bytes are
 * `tf.memory().numBytes` (live tensors) before and after loading, against the base's own bytes.
 * A mixed batch of N rows (one row per adapter) is run once to show they all serve together, and
 * its time is printed beside the time of the base alone (measured here, never asserted).
 * Prints a Markdown table.
 */
import { parseArgs } from 'node:util';
import * as tf from '@tensorflow/tfjs';
import { initBackend } from '@peftkit/core';
import { BASE_ADAPTER_NAME, createModel, loadAdapters, manualSeed } from '@peftkit/models';
import { hfFixture } from '@peftkit/models/testing';
import { loraMethod } from '@peftkit/lora';

const { values: args } = parseArgs({ options: { adapters: { type: 'string', default: '1,2,4,8' }, vocab: { type: 'string', default: '50257' } } });
const counts = args.adapters.split(',').map(Number);

const ADAPTER = hfFixture('gpt2-lora-tigrinya');

const info = await initBackend('wasm');
const MB = (b: number) => (b / 2 ** 20).toFixed(1);
const n = (x: number) => x.toLocaleString('en-US');

console.log(`backend: ${info.name} (${info.detail}); adapter: ${ADAPTER}\n`);
console.log('| adapters | base bytes | bytes after loading | added bytes | added per adapter | per adapter / base | mixed batch ms (N rows × 16 tokens) | base alone ms |');
console.log('|---:|---:|---:|---:|---:|---:|---:|---:|');
for (const N of counts) {
  manualSeed(1);
  const before = tf.memory().numBytes;
  const model = createModel({ model_type: 'gpt2', n_embd: 768, n_layer: 12, n_head: 12, vocab_size: Number(args.vocab), n_positions: 1024 }, 'causal-lm');
  const baseBytes = tf.memory().numBytes - before;
  const loadedBefore = tf.memory().numBytes;
  const peft = await loadAdapters({ model, source: 'gpt2-shaped' }, Array.from({ length: N }, (_, i) => ({ name: `a${i}`, path: ADAPTER })), [loraMethod]);
  const added = tf.memory().numBytes - loadedBefore;

  const ids = tf.tensor2d(Array.from({ length: N * 16 }, (_, i) => (i * 7919) % 1000), [N, 16], 'int32');
  const time = (fn: () => tf.Tensor) => {
    tf.tidy(() => fn().dataSync()); // warm-up
    const t0 = performance.now();
    tf.tidy(() => fn().dataSync());
    return performance.now() - t0;
  };
  const names = [...peft.adapters.keys()];
  const mixedMs = time(() => peft.forward({ inputIds: ids }, { adapterNames: names }).logits);
  const baseMs = time(() => peft.forward({ inputIds: ids }, { adapterNames: names.map(() => BASE_ADAPTER_NAME) }).logits);
  console.log(`| ${N} | ${n(baseBytes)} (${MB(baseBytes)} MiB) | ${n(baseBytes + added)} | ${n(added)} | ${n(added / N)} (${MB(added / N)} MiB) | ${((100 * added) / N / baseBytes).toFixed(2)} % | ${mixedMs.toFixed(0)} | ${baseMs.toFixed(0)} |`);

  ids.dispose();
  for (const name of names) peft.deleteAdapter(name);
  const leftover = tf.memory().numBytes - loadedBefore;
  if (leftover !== 0) console.log(`  (after deleting every adapter ${n(leftover)} bytes were left)`);
  model.dispose();
}
