/**
 * `peftkit generate`, `classify` and `inspect`, run in-process with captured output, against the
 * real HF fixtures and adapters made here on the tiny real GPT-2 checkpoint; each result is
 * compared with the library called directly.
 */
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, relative } from 'node:path';
import { Readable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import * as tf from '@tensorflow/tfjs';
import { initBackend, type LoadedPlugin } from '@peftkit/core';
import {
  BASE_ADAPTER_NAME, classify, generateText, loadAdapters, loadPretrained, readSafetensorsHeader, savePretrained,
  type AdapterInspection, type Classification, type Generation,
} from '@peftkit/models';
import loraModule, { injectLora, loraMethod, writeHfAdapter, type LoraConfig } from '@peftkit/lora';
import { runCli, type CliOptions } from './cli.js';

const here = dirname(fileURLToPath(import.meta.url));
const root = join(here, '..', '..', '..');
/** A shared HF fixture, as the path typed from the repo root. */
const hf = (set: string) => `../shared/fixtures/hf/${set}`;
const TINY = hf('ckpt-gpt2-tiny-vocab'); // GPT-2, vocab 21, n_embd 2, 1 layer; vocab.json + merges.txt
const lora: LoadedPlugin = { name: '@peftkit/lora', version: '0.1.0', module: loraModule };

const tmpDir = mkdtempSync(join(tmpdir(), 'peftkit-cli-serve-'));
/** A scratch path as typed from the repo root. */
const tmp = (name: string) => relative(root, join(tmpDir, name));
const abs = (p: string) => join(root, p);

/** Runs the CLI in-process from the repo root with LoRA as the only plugin; keeps stdout's chunks. */
async function cli(args: string[], opts: CliOptions = {}) {
  const chunks: string[] = [];
  let err = '';
  const code = await runCli(args, { cwd: root, builtins: [lora], out: (s) => void chunks.push(s), err: (s) => void (err += s), ...opts });
  return { code, out: chunks.join(''), chunks, err };
}

const zip = <A, B>(a: A[], b: B[]): [A, B][] => a.map((x, i) => [x, b[i]]);
const noStack = (err: string) => assert.doesNotMatch(err, /\n\s+at /, err);

/** Saves a LoRA adapter made on the checkpoint in `model`, with random A and B (std 3), as an HF folder. */
async function makeAdapter(model: string, name: string, config: LoraConfig, seed: number, task: 'causal-lm' | 'sequence-classification', numLabels?: number): Promise<string> {
  const loaded = await loadPretrained(abs(model), { task, numLabels });
  const h = injectLora(loaded.model, config, { seed });
  let s = seed;
  // Random B too (LoRA starts with B = 0, which would change nothing), and a head unlike the base's.
  for (const [, v] of h.trainableParameters()) v.assign(tf.randomNormal(v.shape, 0, 3, 'float32', s++));
  writeHfAdapter(h, abs(tmp(name)), model);
  loaded.model.dispose();
  return tmp(name);
}

before(async () => {
  await initBackend('wasm');
});
after(() => rmSync(tmpDir, { recursive: true, force: true }));

describe('peftkit inspect', () => {
  /** Element count of every tensor in a safetensors file, from its header. */
  const elements = (file: string) => Object.values(readSafetensorsHeader(abs(file)).tensors).reduce((s, t) => s + t.shape.reduce((a, b) => a * b, 1), 0);
  const n = (x: number) => x.toLocaleString('en-US');
  const config = (set: string) => JSON.parse(readFileSync(abs(`${hf(set)}/adapter_config.json`), 'utf8'));

  it('LoRA fixtures: method, rank / alpha, targets and parameter counts, text and JSON', async () => {
    const cases: [set: string, task: string, modules: number, layers: number][] = [
      ['gpt2-lora-tigrinya', 'CAUSAL_LM', 36, 12],
      ['smollm-lora-instruct', 'none', 60, 30],
      ['distilbert-lora-emotion-seqcls', 'SEQ_CLS', 12, 6],
    ];
    for (const [set, task, modules, layers] of cases) {
      const cfg = config(set);
      const params = elements(`${hf(set)}/adapter_model.safetensors`);
      const r = await cli(['inspect', hf(set)]);
      assert.equal(r.code, 0, r.err);
      assert.equal(r.err, '');
      assert.ok(r.out.startsWith(`${set}  (${hf(set)})\n`), 'the folder as typed');
      assert.match(r.out, /kind: +HF PEFT adapter, LORA\n/);
      assert.match(r.out, new RegExp(`task type: +${task}\\n`));
      assert.match(r.out, new RegExp(`rank / alpha: +r ${cfg.r}, lora_alpha ${cfg.lora_alpha} \\(scaling ${cfg.lora_alpha / cfg.r}\\)`));
      assert.ok(r.out.includes(`target modules:  ${JSON.stringify(cfg.target_modules)} → ${modules} modules in ${layers} layer(s)`), r.out);
      assert.match(r.out, new RegExp(`parameters: +${n(params)} in `));

      const j = await cli(['inspect', '--json', hf(set)]);
      assert.equal(j.code, 0);
      const ins = JSON.parse(j.out) as AdapterInspection;
      assert.deepEqual([ins.method, ins.lora!.r, ins.lora!.loraAlpha, ins.lora!.modules.length, ins.numParameters, ins.folder], ['LORA', cfg.r, cfg.lora_alpha, modules, params, hf(set)]);
      assert.deepEqual(ins.targetModules, cfg.target_modules);
      assert.equal((ins as { text?: string }).text, undefined, 'JSON leaves out the rendering');
    }
    const seqcls = await cli(['inspect', hf('distilbert-lora-emotion-seqcls')]);
    assert.match(seqcls.out, /labels: +6 \(rows of the saved head\)/);
    // LoRA: 6 layers × 2 modules × r·(768 + 768); the rest is the saved heads (modules_to_save).
    const loraParams = 6 * 2 * 8 * (768 + 768);
    assert.ok(seqcls.out.includes(`(${n(loraParams)} adapter + ${n(elements(`${hf('distilbert-lora-emotion-seqcls')}/adapter_model.safetensors`) - loraParams)} modules_to_save)`), seqcls.out);
  });

  it('prompt tuning (bloom): virtual tokens × token_dim and the table', async () => {
    const cfg = config('bloom-prompt-tuning');
    const params = elements(`${hf('bloom-prompt-tuning')}/adapter_model.safetensors`);
    const r = await cli(['inspect', hf('bloom-prompt-tuning')]);
    assert.equal(r.code, 0);
    assert.match(r.out, /kind: +HF PEFT adapter, PROMPT_TUNING\n/);
    assert.ok(r.out.includes(`virtual tokens:  ${cfg.num_virtual_tokens} × token_dim ${cfg.token_dim}`), r.out);
    assert.ok(r.out.includes(`prompt_embeddings [${cfg.num_virtual_tokens}, ${cfg.token_dim}]`));
    assert.equal(params, cfg.num_virtual_tokens * cfg.token_dim);
    assert.match(r.out, new RegExp(`parameters: +${n(params)} in 1 tensor\\n`));
    const ins = JSON.parse((await cli(['inspect', '--json', hf('bloom-prompt-tuning')])).out) as AdapterInspection;
    assert.deepEqual([ins.method, ins.prompt!.numVirtualTokens, ins.prompt!.tokenDim, ins.numParameters], ['PROMPT_TUNING', cfg.num_virtual_tokens, cfg.token_dim, params]);
  });

  it('--base explains every mismatch and exits 1; a fitting adapter exits 0', async () => {
    const r = await cli(['inspect', hf('gpt2-lora-tigrinya'), '--base', hf('ckpt-gpt2-fake-nembd2')]);
    assert.equal(r.code, 1);
    assert.ok(r.out.includes(`compatibility with ${hf('ckpt-gpt2-fake-nembd2')}: 39 mismatches in 36 checked`), r.out);
    assert.ok(r.out.includes('transformer.h.0.attn.c_attn: lora_A is [8, 768], so the adapter expects 768 input features, but the base\'s layer takes 2'));
    assert.ok(r.out.includes('transformer.h.0.mlp.c_proj: lora_B is [768, 8], so the adapter expects 768 output features, but the base\'s layer gives 2'));
    assert.match(r.out, /transformer\.h\.7\.attn\.c_proj: the base has no such linear layer \(the adapter wraps layer 7; the base has only layer 0\)/);
    // Every mismatch is listed, each on its line, and the notes after them.
    const listed = r.out.split('\n').filter((l) => l.startsWith('    - '));
    assert.equal(listed.length, 39);
    assert.equal(listed[38], '    - transformer.h.11.mlp.c_proj: the base has no such linear layer (the adapter wraps layer 11; the base has only layer 0)');
    assert.ok(r.out.endsWith('    (the adapter has modules in layers 0-11; the base has 1)\n'));
    const j = await cli(['inspect', '--json', hf('gpt2-lora-tigrinya'), '--base', hf('ckpt-gpt2-fake-nembd2')]);
    assert.equal(j.code, 1);
    const c = (JSON.parse(j.out) as AdapterInspection).compatibility!;
    assert.deepEqual([c.compatible, c.checked, c.mismatches.length, c.base], [false, 36, 39, hf('ckpt-gpt2-fake-nembd2')]);

    // The tiny checkpoint is a GPT2Model (no LM head named): saved again as GPT2LMHeadModel, it is a causal-LM base.
    const lm = await loadPretrained(abs(TINY), { task: 'causal-lm' });
    savePretrained(lm, abs(tmp('tiny-lm')));
    lm.model.dispose();
    const made = await makeAdapter(TINY, 'fits', { r: 2, lora_alpha: 4, target_modules: ['c_attn'] }, 1, 'causal-lm');
    const ok = await cli(['inspect', made, '--base', tmp('tiny-lm')]);
    assert.equal(ok.code, 0, ok.out);
    assert.ok(ok.out.includes(`compatibility with ${tmp('tiny-lm')}: OK (1 checked)`), ok.out);
  });

  it('--base runs the loader\'s own checks: what the loader refuses is a mismatch (exit 1); a SEQ_CLS adapter is checked on the base as a classifier (exit 0)', async () => {
    const lm = await loadPretrained(abs(TINY), { task: 'causal-lm' });
    savePretrained(lm, abs(tmp('tiny-lm2')));
    lm.model.dispose();
    const good = await makeAdapter(TINY, 'loader-good', { r: 2, lora_alpha: 4, target_modules: ['c_attn'] }, 3, 'causal-lm');
    const { readSafetensors, writeSafetensors } = await import('@peftkit/models');
    const key = 'base_model.model.transformer.h.0.attn.c_attn';
    /** A copy of the good adapter with its config and tensors edited. */
    const variant = (name: string, edit: { config?: Record<string, unknown>; tensors?: (t: Map<string, tf.Tensor>) => Map<string, tf.Tensor> }) => {
      const dir = abs(tmp(name));
      mkdirSync(dir, { recursive: true });
      const cfg = JSON.parse(readFileSync(join(abs(good), 'adapter_config.json'), 'utf8'));
      writeFileSync(join(dir, 'adapter_config.json'), JSON.stringify({ ...cfg, ...edit.config }, null, 2));
      const t = readSafetensors(join(abs(good), 'adapter_model.safetensors')).tensors;
      writeSafetensors(join(dir, 'adapter_model.safetensors'), edit.tensors ? edit.tensors(t) : t, { format: 'pt' });
      return tmp(name);
    };
    const cases: [string, string, RegExp][] = [
      ['no tensors', variant('v-empty', { tensors: () => new Map() }), /missing tensors|no tensors/i],
      ['3-D lora_B', variant('v-3d', { tensors: (t) => new Map([...t].map(([k, v]) => [k, k.endsWith('lora_B.weight') ? v.reshape([6, 2, 1]) : v])) }), /lora_B/],
      ['rank differs from r', variant('v-rank', { config: { r: 4 } }), /wrong shapes.*expected \[4, 2\], got \[2, 2\]|rank/],
      ['DoRA tensors', variant('v-dora', { tensors: (t) => new Map([...t, [`${key}.lora_magnitude_vector`, tf.ones([6])]]) }), /dora|magnitude/i],
      ['unknown tensors', variant('v-unknown', { tensors: (t) => new Map([...t, ['base_model.model.transformer.h.0.attn.c_attn.lora_C.weight', tf.ones([2, 2])]]) }), /lora_C/],
      ['targets missing from the file', variant('v-missing', { config: { target_modules: ['c_attn', 'c_fc'] } }), /c_fc/],
    ];
    for (const [what, folder, why] of cases) {
      // The loader itself refuses each folder ...
      const base = await loadPretrained(abs(tmp('tiny-lm2')), { task: 'causal-lm' });
      await assert.rejects(loadAdapters(base, [{ name: 'x', path: abs(folder) }], [loraMethod]), why, what);
      base.model.dispose();
      // ... and inspect says so, with the loader's words, and exits 1.
      const r = await cli(['inspect', folder, '--base', tmp('tiny-lm2')]);
      assert.equal(r.code, 1, `${what}: ${r.out}${r.err}`);
      assert.match(r.out, /compatibility with .*: 1 mismatch/, what);
      assert.match(r.out.split('compatibility with')[1], why, `${what}: ${r.out}`);
      noStack(r.out + r.err);
    }
    // A sequence-classification adapter: classify loads it on this causal-LM checkpoint (head of 3 labels), so inspect accepts it.
    const cls = await makeAdapter(TINY, 'loader-cls', { r: 2, lora_alpha: 8, target_modules: ['c_attn'], task_type: 'SEQ_CLS' }, 5, 'sequence-classification', 3);
    const ok = await cli(['inspect', cls, '--base', tmp('tiny-lm2')]);
    assert.equal(ok.code, 0, ok.out + ok.err);
    assert.match(ok.out, /compatibility with .*: OK/);
    const classified = await cli(['classify', '--model', tmp('tiny-lm2'), '--adapter', `c=${cls}`, '--backend', 'wasm', '--no-discover', 'hello']);
    assert.equal(classified.code, 0, classified.err);
  });

  it('a model folder is described as a model; bad folders are clean errors', async () => {
    const m = await cli(['inspect', TINY]);
    assert.equal(m.code, 0);
    assert.match(m.out, /MODEL CHECKPOINT, not an adapter/);
    const missing = await cli(['inspect', 'nope/missing']);
    assert.equal(missing.code, 1);
    assert.equal(missing.err, 'nope/missing: folder not found\n  hint: give the folder that holds adapter_config.json\n');
    const shared = await cli(['inspect', '../shared/fixtures']);
    assert.equal(shared.code, 1);
    assert.match(shared.err, /^\.\.\/shared\/fixtures: neither an adapter folder/);
    const base = await cli(['inspect', hf('gpt2-lora-tigrinya'), '--base', './nope']);
    assert.equal(base.code, 1);
    assert.match(base.err, /model folder not found: \.\/nope/);
    for (const e of [missing.err, shared.err, base.err]) noStack(e);
  });
});

describe('peftkit generate', () => {
  let tuned = '';
  let other = '';
  before(async () => {
    tuned = await makeAdapter(TINY, 'tuned', { r: 2, lora_alpha: 8, target_modules: ['c_attn', 'c_proj', 'c_fc'] }, 3, 'causal-lm');
    other = await makeAdapter(TINY, 'other', { r: 4, lora_alpha: 8, target_modules: ['c_fc'] }, 11, 'causal-lm');
  });

  /** Greedy decoding by the library itself, on a fresh base with the same adapters. */
  async function direct(prompt: string, adapter: string, maxNewTokens: number): Promise<Generation> {
    const base = await loadPretrained(abs(TINY), { task: 'causal-lm' });
    const peft = await loadAdapters(base, [{ name: 'tuned', path: abs(tuned) }, { name: 'other', path: abs(other) }], [loraMethod]);
    const [g] = await generateText(peft, [prompt], { maxNewTokens, adapter, eosTokenId: null });
    base.model.dispose();
    return g;
  }

  const common = ['--model', TINY, '--backend', 'wasm', '--no-discover', '--max-new-tokens', '8', '--ignore-eos'];

  it('streams the greedy continuation: stdout = the returned text = the library\'s greedy decoding', async () => {
    const expected = await direct(' lower', 'tuned', 8);
    assert.equal(expected.tokenIds.length, 8);
    assert.ok(expected.text.length > 0);

    const r = await cli(['generate', ...common, '--adapter', `tuned=${tuned}`, ' lower']);
    assert.equal(r.code, 0, r.err);
    assert.equal(r.out, `${expected.text}\n`);
    assert.ok(r.chunks.length > 2, `streamed in pieces: ${JSON.stringify(r.chunks)}`);
    assert.equal(r.chunks.slice(0, -1).join(''), expected.text);
    assert.match(r.err, /^backend: wasm \(@tensorflow\/tfjs-backend-wasm/m);
    assert.match(r.err, /loaded adapter "tuned" \(lora\)/);
    assert.match(r.err, /8 tokens in .* stopped at --max-new-tokens 8; adapter: tuned/);

    const j = await cli(['generate', ...common, '--adapter', `tuned=${tuned}`, '--json', ' lower']);
    assert.equal(j.code, 0, j.err);
    const g = JSON.parse(j.out) as Generation;
    assert.deepEqual(g, { ...expected, adapter: 'tuned' }); // the active adapter, named
    assert.equal(g.text, r.out.slice(0, -1), 'streamed text = returned text');
  });

  it('several adapters on one base; --use picks one, __base__ the base alone, and the outputs differ', async () => {
    const two = ['--adapter', `tuned=${tuned}`, '--adapter', `other=${other}`];
    const outputs: Record<string, string> = {};
    for (const use of ['tuned', 'other', BASE_ADAPTER_NAME]) {
      const r = await cli(['generate', ...common, ...two, '--use', use, '--json', ' lower']);
      assert.equal(r.code, 0, r.err);
      const g = JSON.parse(r.out) as Generation;
      const want = await direct(' lower', use, 8);
      assert.deepEqual([g.tokenIds, g.text, g.adapter], [want.tokenIds, want.text, use], use);
      outputs[use] = g.tokenIds.join(',');
    }
    assert.notEqual(outputs.tuned, outputs[BASE_ADAPTER_NAME], 'the adapter changes the output');
    assert.notEqual(outputs.other, outputs.tuned);
  });

  it('reads the prompt from standard input when none is given', async () => {
    const arg = await cli(['generate', ...common, '--adapter', `tuned=${tuned}`, ' newer wider']);
    const piped = await cli(['generate', ...common, '--adapter', `tuned=${tuned}`], { stdin: Readable.from([Buffer.from(' newer'), Buffer.from(' wider\n')]) });
    assert.equal(piped.code, 0, piped.err);
    assert.equal(piped.out, arg.out);
    assert.equal(piped.out, `${(await direct(' newer wider', 'tuned', 8)).text}\n`);
    const empty = await cli(['generate', ...common], { stdin: Readable.from(['\n']) });
    assert.equal(empty.code, 1);
    assert.equal(empty.err, 'error: no prompt: give one as an argument or on standard input\n');
  });

  it('bad input is a clean error: model as adapter, pickle, wrong shapes, missing folders, unknown names', async () => {
    const pickle = tmp('pickle');
    mkdirSync(abs(pickle));
    writeFileSync(abs(`${pickle}/adapter_config.json`), JSON.stringify({ peft_type: 'LORA', task_type: 'CAUSAL_LM', r: 2, target_modules: ['c_attn'] }));
    writeFileSync(abs(`${pickle}/adapter_model.bin`), 'PK\x03\x04');
    const cases: [args: string[], message: RegExp, hint?: RegExp][] = [
      [['--adapter', `x=${hf('ckpt-gpt2-fake-nembd2')}`], /^\.\.\/shared\/fixtures\/hf\/ckpt-gpt2-fake-nembd2 is a model checkpoint \(gpt2\), not an adapter/, /give it as the base model \(--model\)/],
      [['--adapter', `p=${pickle}`], new RegExp(`^error: adapter "p" \\(${pickle}\\): the weights are only in adapter_model\\.bin, a PyTorch pickle, which peftkit does not load`), /save_pretrained/],
      [['--adapter', `tig=${hf('gpt2-lora-tigrinya')}`], /^error: adapter "tig" \(\.\.\/shared\/fixtures\/hf\/gpt2-lora-tigrinya\) does not fit the base model .*ckpt-gpt2-tiny-vocab: 39 mismatches\n {2}- transformer\.h\.0\.attn\.c_attn: lora_A is \[8, 768\], so the adapter expects 768 input features, but the base's layer takes 2\n/m, /peftkit inspect \.\.\/shared\/fixtures\/hf\/gpt2-lora-tigrinya --base /],
      [['--adapter', 'a=nope/none'], /^nope\/none: adapter folder not found|^error: adapter folder not found: nope\/none/],
      [['--adapter', `a=${tuned}`, '--use', 'b'], /^error: --use b: no adapter of that name; given: a\n/],
      [['--adapter', `a=${tuned}`, '--adapter', `a=${other}`], /the name "a" is given twice/],
      [['--adapter', `s=${hf('distilbert-lora-emotion-seqcls')}`], /is a sequence-classification adapter \(task_type SEQ_CLS\)/, /peftkit classify/],
    ];
    for (const [args, message, hint] of cases) {
      const r = await cli(['generate', ...common, ...args, ' low']);
      assert.equal(r.code, 1, `${args.join(' ')}: ${r.err}`);
      assert.equal(r.out, '');
      assert.match(r.err, message);
      if (hint) assert.match(r.err, new RegExp(`\\n {2}hint: .*${hint.source}`));
      noStack(r.err);
    }
    const noModel = await cli(['generate', '--model', './nope', '--backend', 'wasm', '--no-discover', 'x']);
    assert.equal(noModel.code, 1);
    assert.match(noModel.err, /model folder not found: \.\/nope\n/);
    const badNumber = await cli(['generate', ...common, '--top-k', 'many', 'x']);
    assert.equal(badNumber.code, 1);
    assert.match(badNumber.err, /option '--top-k <k>' argument 'many' is invalid\. expected an integer >= 0\./);
  });
});

describe('peftkit classify', () => {
  const LABELS = ['negative', 'neutral', 'positive'];
  let base = '';
  let adapter = '';
  before(async () => {
    // A tiny sequence classifier: the tiny GPT-2 with a 3-label score head, saved with savePretrained.
    const loaded = await loadPretrained(abs(TINY), { task: 'sequence-classification', numLabels: 3 });
    loaded.model.config.id2label = Object.fromEntries(LABELS.map((l, i) => [String(i), l]));
    base = tmp('cls-base');
    savePretrained(loaded, abs(base));
    loaded.model.dispose();
    adapter = await makeAdapter(base, 'cls-lora', { r: 2, lora_alpha: 8, target_modules: ['c_attn', 'c_fc'], task_type: 'SEQ_CLS' }, 7, 'sequence-classification', 3);
  });

  /** The library's classify on a fresh base with the adapter. */
  async function direct(texts: string[], use?: string): Promise<Classification[]> {
    const b = await loadPretrained(abs(base), { task: 'sequence-classification', numLabels: 3 });
    const peft = await loadAdapters(b, [{ name: 'sent', path: abs(adapter) }], [loraMethod]);
    const out = await classify(peft, texts, { adapter: use });
    b.model.dispose();
    return out;
  }

  const common = () => ['--model', base, '--adapter', `sent=${adapter}`, '--backend', 'wasm', '--no-discover'];
  const texts = [' lower', ' newer wider', ' lowest'];

  it('a bottleneck (houlsby) adapter trained on the classifier: its saved head gives the base 3 labels and its own outputs', async () => {
    const adapterPlugin: LoadedPlugin = { name: '@peftkit/adapter', version: '0.1.0', module: (await import('@peftkit/adapter')).default };
    const { injectBottleneckAdapter, loadAdapterHub } = await import('@peftkit/adapter');
    // A base without a classifier head (a causal-LM checkpoint): only the adapter's head can say there are 3 labels.
    const plain = await loadPretrained(abs(TINY), { task: 'causal-lm' });
    const plainBase = tmp('cls-base-2');
    savePretrained(plain, abs(plainBase));
    plain.model.dispose();
    const b = await loadPretrained(abs(base), { task: 'sequence-classification', numLabels: 3 });
    const h = injectBottleneckAdapter(b.model, { reduction_factor: 1 }, { seed: 3, adapterName: 'hb' }, 'houlsby');
    let s = 5;
    for (const [, v] of h.trainableParameters()) v.assign(tf.randomNormal(v.shape, 0, 1, 'float32', s++));
    const folder = tmp('cls-houlsby');
    h.save(abs(folder));
    b.model.dispose();
    const r = await cli(['classify', '--model', plainBase, '--adapter', `hb=${folder}`, '--backend', 'wasm', '--no-discover', '--json', ...texts], { builtins: [lora, adapterPlugin] });
    assert.equal(r.code, 0, r.err);
    const got = JSON.parse(r.out) as Classification[];
    assert.deepEqual(got.map((c) => Object.keys(c.probabilities).length), [3, 3, 3]);
    // The same numbers as the library with the head loaded onto a 3-label base.
    const fresh = await loadPretrained(abs(plainBase), { task: 'sequence-classification', numLabels: 3 });
    const back = loadAdapterHub(fresh.model, abs(folder), { seed: 0 });
    const peft = new (await import('@peftkit/models')).PeftModel(fresh);
    peft.addAdapter(back);
    const want = await classify(peft, texts, {});
    fresh.model.dispose();
    for (const [g, w] of zip(got, want)) for (const l of Object.keys(w.probabilities)) assert.ok(Math.abs(g.probabilities[l] - w.probabilities[l]) < 1e-5);
    const ins = await cli(['inspect', folder, '--base', plainBase, '--backend', 'wasm', '--no-discover'], { builtins: [lora, adapterPlugin] });
    assert.equal(ins.code, 0, ins.out + ins.err);
  });

  it('labels from id2label, probabilities that sum to 1, equal to the library\'s; text output', async () => {
    const adapterCfg = JSON.parse(readFileSync(abs(`${adapter}/adapter_config.json`), 'utf8'));
    assert.equal(adapterCfg.task_type, 'SEQ_CLS');
    assert.ok(adapterCfg.modules_to_save.includes('score'), 'the head is saved with the adapter');

    const r = await cli(['classify', ...common(), '--json', ...texts]);
    assert.equal(r.code, 0, r.err);
    const got = JSON.parse(r.out) as Classification[];
    const want = await direct(texts);
    assert.equal(got.length, 3);
    assert.deepEqual(got.map((c) => c.adapter), ['sent', 'sent', 'sent'], 'the active adapter, named');
    for (const [i, c] of got.entries()) {
      assert.deepEqual(Object.keys(c.probabilities), LABELS);
      const p = Object.values(c.probabilities);
      assert.ok(Math.abs(p.reduce((a, b) => a + b, 0) - 1) < 1e-5, `sums to 1: ${p}`);
      assert.equal(c.label, LABELS[p.indexOf(Math.max(...p))]);
      assert.equal(c.labelId, LABELS.indexOf(c.label));
      assert.equal(c.text, texts[i]);
      assert.deepEqual(c, want[i]);
    }
    assert.match(r.err, /model: .*cls-base \(gpt2, sequence-classification, 3 labels, /);

    const text = await cli(['classify', ...common(), ...texts]);
    assert.equal(text.code, 0, text.err);
    const lines = text.out.trimEnd().split('\n');
    assert.equal(lines.length, 6);
    for (const [i, c] of want.entries()) {
      assert.equal(lines[2 * i], `${c.label}\t${c.probabilities[c.label].toFixed(4)}\t${c.text}`);
      assert.equal(lines[2 * i + 1], `  ${LABELS.map((l) => `${l} ${c.probabilities[l].toFixed(4)}`).join('  ')}`);
    }
  });

  it('texts from standard input, one per line; --use __base__ differs; --labels renames', async () => {
    const piped = await cli(['classify', ...common(), '--json'], { stdin: Readable.from([`${texts.join('\n')}\n\n`]) });
    assert.equal(piped.code, 0, piped.err);
    assert.deepEqual(JSON.parse(piped.out), await direct(texts));

    const bare = await cli(['classify', ...common(), '--json', '--use', BASE_ADAPTER_NAME, ...texts]);
    const bareGot = JSON.parse(bare.out) as Classification[];
    assert.deepEqual(bareGot, await direct(texts, BASE_ADAPTER_NAME));
    assert.notDeepEqual(bareGot.map((c) => c.probabilities), JSON.parse(piped.out).map((c: Classification) => c.probabilities), 'the adapter changes the probabilities');

    const renamed = await cli(['classify', ...common(), '--json', '--labels', 'a,b,c', texts[0]]);
    const [c] = JSON.parse(renamed.out) as Classification[];
    assert.deepEqual(Object.keys(c.probabilities), ['a', 'b', 'c']);
    const bad = await cli(['classify', ...common(), '--labels', 'a,b', texts[0]]);
    assert.equal(bad.code, 1);
    assert.match(bad.err, /--labels gives 2 name\(s\) but the adapter's head has 3 labels/);
  });

  it('a causal-LM adapter is refused with a pointer to generate', async () => {
    const r = await cli(['classify', '--model', base, '--adapter', `t=${hf('gpt2-lora-tigrinya')}`, '--backend', 'wasm', '--no-discover', 'x']);
    assert.equal(r.code, 1);
    assert.match(r.err, /adapter "t" .* is a causal-LM adapter \(task_type CAUSAL_LM\) without label words in a prompt_format\.json, so not a classifier\n {2}hint: generate with it: peftkit generate/);
    noStack(r.err);
  });
});
