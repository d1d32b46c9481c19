/**
 * `peftkit merge`, in-process: a LoRA adapter on a tiny random GPT-2 merged into its float32 base,
 * and (QLoRA) into the base quantized with NF4 then dequantized, optionally re-quantized. Each
 * merged checkpoint is loaded with no adapter and compared with the base + adapter computed by the
 * library directly.
 */
import assert from 'node:assert/strict';
import { copyFileSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { initBackend, type LoadedPlugin } from '@peftkit/core';
import { createModel, loadAdapters, loadPretrained, manualSeed, readSafetensorsHeader, savePretrained, type PeftModel, type PreTrainedModel } from '@peftkit/models';
import { hfFixture } from '@peftkit/models/testing';
import loraModule, { injectLora, loraMethod, writeHfAdapter } from '@peftkit/lora';
import qloraModule, { loadQuantizedPretrained, nf4Scheme } from '@peftkit/qlora';
import { runCli } from './cli.js';

const plugins: LoadedPlugin[] = [
  { name: '@peftkit/lora', version: '0.1.0', module: loraModule },
  { name: '@peftkit/qlora', version: '0.1.0', module: qloraModule },
];
const dir = mkdtempSync(join(tmpdir(), 'peftkit-cli-merge-'));
const base = join(dir, 'base');
const adapter = join(dir, 'adapter');
const ids = () => tf.tensor2d([[1, 5, 9, 2, 7, 3, 11, 4]], [1, 8], 'int32');

async function cli(args: string[]) {
  let out = '';
  let err = '';
  const code = await runCli(args, { cwd: dir, builtins: plugins, out: (s) => void (out += s), err: (s) => void (err += s) });
  return { code, out, err };
}

function logits(model: PreTrainedModel | PeftModel): tf.Tensor {
  const x = ids();
  const y = tf.tidy(() => model.forward({ inputIds: x }).logits);
  x.dispose();
  return y;
}

const maxDiff = (a: tf.Tensor, b: tf.Tensor) => tf.tidy(() => tf.max(tf.abs(tf.sub(a, b))).dataSync()[0]);

before(async () => {
  await initBackend('wasm');
  manualSeed(4);
  // Wide enough that NF4 blocks of 64 hold real values (the fixture's n_embd 2 would not).
  const model = createModel({ model_type: 'gpt2', vocab_size: 21, n_positions: 32, n_embd: 64, n_layer: 2, n_head: 2, bos_token_id: 20, eos_token_id: 20 }, 'causal-lm');
  savePretrained({ model, source: 'tiny' }, base);
  for (const f of ['vocab.json', 'merges.txt', 'tokenizer_config.json', 'special_tokens_map.json']) copyFileSync(join(hfFixture('ckpt-gpt2-tiny-vocab'), f), join(base, f));
  const h = injectLora(model, { r: 4, lora_alpha: 8, target_modules: ['c_attn', 'c_fc'], fan_in_fan_out: true }, { seed: 1 });
  let s = 9;
  // Random B too (LoRA starts with B = 0, which would merge nothing).
  for (const [, v] of h.trainableParameters()) v.assign(tf.randomNormal(v.shape, 0, 0.5, 'float32', s++));
  writeHfAdapter(h, adapter, base);
  model.dispose();
});
after(() => rmSync(dir, { recursive: true, force: true }));

describe('peftkit merge', () => {
  it('LoRA into the float32 base: the merged checkpoint gives base + adapter, with the base\'s own tensor names', async () => {
    const r = await cli(['merge', '--model', 'base', '--adapter', 'adapter', '--out', 'merged', '--backend', 'wasm']);
    assert.equal(r.code, 0, r.err);
    assert.match(r.err, /merging lora adapter adapter into the float32 base base/);
    assert.match(r.out, /^wrote merged: the merged model, float32, [\d,]+ bytes; merged into the float32 base base\n$/);
    const merged = await loadPretrained(join(dir, 'merged'));
    const peft = await loadAdapters(await loadPretrained(base), [{ name: 'a', path: adapter }], [loraMethod]);
    const [a, b] = [logits(merged.model), logits(peft)];
    assert.ok(maxDiff(a, b) < 1e-5, `differs by ${maxDiff(a, b)}`);
    const plain = await loadPretrained(base);
    const c = logits(plain.model);
    assert.ok(maxDiff(a, c) > 1e-2, 'the adapter changed the outputs');
    assert.deepEqual(Object.keys(readSafetensorsHeader(join(dir, 'merged', 'model.safetensors')).tensors).sort(), Object.keys(readSafetensorsHeader(join(base, 'model.safetensors')).tensors).sort());
    tf.dispose([a, b, c]);
  });

  it('QLoRA (--quantize nf4): merged into the dequantized NF4 base, which is what the adapter saw; --requantize writes NF4 storage', async () => {
    const r = await cli(['merge', '-m', 'base', '-a', 'adapter', '-o', 'merged-q', '--quantize', 'nf4', '--backend', 'wasm']);
    assert.equal(r.code, 0, r.err);
    assert.match(r.out, /merged into base quantized with nf4 \(blocksize 64, double quantization\) and dequantized to float32 \(\d+ layers\): the weights a QLoRA adapter was trained against/);
    // Reference: LoRA on the NF4 base (QuantLinear layers), computed directly.
    const q = await loadPretrained(base);
    await nf4Scheme.quantize(q.model, { quant_type: 'nf4', blocksize: 64, double_quant: true });
    const peft = await loadAdapters(q, [{ name: 'a', path: adapter }], [loraMethod]);
    const merged = await loadPretrained(join(dir, 'merged-q'));
    const [a, b] = [logits(merged.model), logits(peft)];
    assert.ok(maxDiff(a, b) < 1e-4, `differs by ${maxDiff(a, b)}`);
    // Into the float32 base instead, the result differs by the 4-bit rounding of the base.
    const f = await loadPretrained(join(dir, 'merged'));
    const c = logits(f.model);
    assert.ok(maxDiff(c, b) > 10 * maxDiff(a, b), `float32-base merge ${maxDiff(c, b)} vs NF4-base merge ${maxDiff(a, b)}`);
    tf.dispose([a, b, c]);

    const rq = await cli(['merge', '-m', 'base', '-a', 'adapter', '-o', 'merged-nf4', '--quantize', 'nf4', '--requantize', '--backend', 'wasm']);
    assert.equal(rq.code, 0, rq.err);
    assert.match(rq.out, /re-quantized with nf4/);
    const cfg = JSON.parse(readFileSync(join(dir, 'merged-nf4', 'config.json'), 'utf8'));
    assert.equal(cfg.quantization_config.bnb_4bit_quant_type, 'nf4');
    const back = await loadQuantizedPretrained(join(dir, 'merged-nf4'));
    const d = logits(back.model);
    const e = logits(merged.model);
    // Re-quantizing rounds the merged weights to the NF4 grid again: close to, not equal to, the float32 merge.
    assert.ok(maxDiff(d, e) > 0 && maxDiff(d, e) < 0.5, `re-quantized differs by ${maxDiff(d, e)}`);
    tf.dispose([d, e]);
  });

  it('refuses an adapter of another shape before merging, and --requantize without --quantize', async () => {
    mkdirWide();
    const r = await cli(['merge', '-m', 'wide', '-a', 'adapter', '-o', 'nope', '--backend', 'wasm']);
    assert.equal(r.code, 1);
    assert.match(r.err, /adapter adapter does not fit the base model wide: \d+ mismatches\n  - transformer\.h\.0\.attn\.c_attn: lora_A is \[4, 64\]/);
    assert.doesNotMatch(r.err, /\n\s+at /);
    const r2 = await cli(['merge', '-m', 'base', '-a', 'adapter', '-o', 'nope', '--requantize']);
    assert.equal(r2.code, 1);
    assert.match(r2.err, /--requantize needs --quantize <scheme>/);
  });
});

function mkdirWide(): void {
  manualSeed(5);
  const model = createModel({ model_type: 'gpt2', vocab_size: 21, n_positions: 32, n_embd: 32, n_layer: 2, n_head: 2 }, 'causal-lm');
  savePretrained({ model, source: 'wide' }, join(dir, 'wide'));
  model.dispose();
}
