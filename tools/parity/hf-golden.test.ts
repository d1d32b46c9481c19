/**
 * Parity with the real Hugging Face libraries: every case of `../shared/fixtures/hf-golden` (made by
 * transformers 5.17 + peft 0.21, see its README.md) loaded the way a user loads it, on the WASM
 * backend. For each case of a method peftkit has: the base's logits, the adapter's logits, the
 * loss and the gradient of every adapter tensor, the exported adapter's tensors and config keys,
 * and the merged model's logits, each against HF's. Cases of methods peftkit lacks are asserted to
 * be refused with a message naming the missing feature.
 *
 * One entry per case folder in {@link CASES}; a folder without an entry fails the suite. When a
 * method lands, change its entries from `refused` to `RUN`.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { UserError, createRegistry, importPlugin, initBackend, type PeftMethod } from '@peftkit/core';
import { readSafetensors, readSafetensorsHeader, writeHfAdapterFiles, type LoadedPretrained, type PeftModel } from '@peftkit/models';
import { hfGolden, scratch } from '@peftkit/models/testing';
import { deviation, goldenCaseNames, goldenGradients, goldenLogits, loadGoldenAdapter, loadGoldenBase, readGoldenCase, type GoldenCase } from './golden.js';

/** Relative tolerance of every comparison (of the largest magnitude of HF's values compared). */
const TOLERANCE = 1e-4;

/** A case peftkit runs in full. */
const RUN = { run: true } as const;
/** A case peftkit refuses today: the message must match (it names the missing feature). */
type Refused = { refused: RegExp; until: string };
type Entry = typeof RUN | Refused;

/** Every case folder of hf-golden, by name. */
const CASES: Record<string, Entry> = {
  'bert-seqcls-lora': RUN,
  'gpt2-lora': RUN,
  'gpt2-prefix-projection': RUN,
  'llama-lora-all-linear-tied': RUN,
  'llama-prompt': RUN,
  'qwen2-lora-rslora-patterns': RUN,
  'qwen2-rope1e6-lora': RUN,
  'llama-dora': RUN,
  'llama-lora-embed-lmhead': RUN,
  'gpt2-ia3': RUN,
};

/** Plugins as a user has them installed: their registered methods read the adapter folders. */
const PLUGINS = ['@peftkit/steps', '@peftkit/lora', '@peftkit/qlora', '@peftkit/adapter', '@peftkit/prefix-tuning', '@peftkit/ia3'];
let methods: PeftMethod[] = [];
const tmp = scratch('peftkit-parity-');

before(async () => {
  await initBackend('wasm');
  const plugins = await Promise.all(PLUGINS.map((n) => importPlugin(n, process.cwd())));
  methods = createRegistry(plugins).methods();
});
after(() => tmp.cleanup());

const has = (name: string, file: string) => existsSync(hfGolden(join(name, file)));
const within = (what: string, d: ReturnType<typeof deviation>) =>
  assert.ok(d.relative <= TOLERANCE, `${what}: max |peftkit − HF| = ${d.maxAbs.toExponential(3)} at ${d.at}, ${d.relative.toExponential(3)} of HF's largest ${d.scale.toExponential(3)}`);

it('every hf-golden case folder has an entry, and every entry a folder', () => {
  const present = goldenCaseNames();
  assert.ok(present.length > 0, 'no case folders: ../shared/fixtures/hf-golden is missing');
  assert.deepEqual(present, Object.keys(CASES).sort());
});

it('every gradient HF recorded is of a tensor the adapter file holds (keys mapped by savedKeyOfParameter)', () => {
  for (const name of goldenCaseNames().filter((n) => has(n, 'hf_grads.json'))) {
    const saved = Object.keys(readSafetensorsHeader(join(hfGolden(name), 'adapter', 'adapter_model.safetensors')).tensors);
    const missing = Object.keys(readGoldenCase(name).grads!.grads).filter((k) => !saved.includes(k));
    assert.deepEqual(missing, [], name);
  }
});

for (const [name, entry] of Object.entries(CASES)) {
  if ('refused' in entry) {
    it(`${name}: refused with a clear message until ${entry.until}`, async () => {
      const c = readGoldenCase(name);
      const base = await loadGoldenBase(c);
      try {
        await assert.rejects(loadGoldenAdapter(base, c, methods), (e: Error) => {
          assert.ok(e instanceof UserError, `a ${e.constructor.name}, not a UserError: ${e.message}`);
          assert.match(e.message, entry.refused);
          return true;
        });
      } finally {
        base.model.dispose();
      }
    });
    continue;
  }

  describe(name, () => {
    let c: GoldenCase;
    let base: LoadedPretrained;
    let peft: PeftModel;
    const mask = () => (c.task === 'causal-lm' ? c.attentionMask : undefined);
    before(async () => {
      c = readGoldenCase(name);
      base = await loadGoldenBase(c);
    });
    after(() => base.model.dispose());

    it('base logits', () => {
      const logits = goldenLogits(base.model, c);
      within('base logits', deviation(logits, c.base, mask()));
      logits.dispose();
    });

    it('adapter logits', async () => {
      peft = await loadGoldenAdapter(base, c, methods);
      const logits = goldenLogits(peft, c);
      within('adapter logits', deviation(logits, c.adapter, mask()));
      logits.dispose();
    });

    it('loss and gradients of the adapter tensors', { skip: has(name, 'hf_grads.json') ? false : 'no hf_grads.json (see the README)' }, () => {
      const { loss, grads } = goldenGradients(peft, c);
      const ref = c.grads!;
      assert.ok(Math.abs(loss - ref.loss) <= TOLERANCE * Math.abs(ref.loss), `loss ${loss} vs HF ${ref.loss}`);
      assert.deepEqual([...grads.keys()].sort(), Object.keys(ref.grads).sort(), 'the trainable tensors are HF\'s');
      for (const [key, g] of grads) within(`gradient of ${key}`, deviation(g, ref.grads[key]));
      tf.dispose([...grads.values()]);
    });

    it('export: the tensors and adapter_config.json HF wrote', () => {
      const dir = join(tmp.dir, name);
      writeHfAdapterFiles(dir, peft.activeAdapter!, null);
      const ours = readSafetensors(join(dir, 'adapter_model.safetensors')).tensors;
      const theirs = readSafetensors(join(c.dir, 'adapter', 'adapter_model.safetensors')).tensors;
      assert.deepEqual([...ours.keys()].sort(), [...theirs.keys()].sort());
      for (const [k, t] of theirs) {
        assert.deepEqual(ours.get(k)!.shape, t.shape, k);
        assert.deepEqual(ours.get(k)!.dataSync(), t.dataSync(), `${k}: values written differ from the ones read`);
      }
      tf.dispose([...ours.values(), ...theirs.values()]);
      const cfg = JSON.parse(readFileSync(join(dir, 'adapter_config.json'), 'utf8'));
      const hf = JSON.parse(readFileSync(join(c.dir, 'adapter', 'adapter_config.json'), 'utf8'));
      for (const [k, v] of Object.entries(cfg)) {
        assert.ok(k in hf, `peftkit writes /${k}, which peft 0.21 does not`);
        assert.deepEqual(v, hf[k], `/${k}`);
      }
      // What peft writes and peftkit does not: features left off (null, false, empty), the
      // version stamp, and QALoRA's group size, which means nothing while use_qalora is false.
      const missing = Object.keys(hf).filter((k) => !(k in cfg));
      const off = (v: unknown) => v == null || v === false || (typeof v === 'object' && Object.keys(v as object).length === 0);
      const notOff = missing.filter((k) => !off(hf[k]) && k !== 'peft_version' && !(k === 'qalora_group_size' && !hf.use_qalora));
      assert.deepEqual(notOff, [], 'settings peft wrote that peftkit leaves out');
    });

    it('merged logits, then unmerged', { skip: has(name, 'hf_merged.json') ? false : 'no hf_merged.json' }, () => {
      const h = peft.activeAdapter!;
      h.merge!();
      const merged = goldenLogits(peft, c);
      within('merged logits', deviation(merged, c.merged!, mask()));
      h.unmerge!();
      const unmerged = goldenLogits(peft, c);
      within('unmerged logits', deviation(unmerged, c.adapter, mask()));
      tf.dispose([merged, unmerged]);
    });
  });
}
