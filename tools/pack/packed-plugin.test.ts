// The packages as a user gets them: build dist/, `npm pack` the CLI, its packages and the LoRA
// plugin, install the tarballs into an empty project outside the workspace, and run a LoRA
// pipeline there with the installed `peftkit` command (load → dataset → inject → train → export).
// Nothing here resolves to the workspace's src/: the project sits in the OS temp folder and the
// child processes run without the `peftkit-source` condition.
import assert from 'node:assert/strict';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, realpathSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve, sep } from 'node:path';
import { test } from 'node:test';
import { repoRoot } from '@peftkit/models/testing';
import { buildPackages, check, cleanEnv, installTarballs, npmVersion, packPackages, run, workspacePackages, type Ran } from './pack.js';
import { sourceOf } from './prune-dist.js';

/** The plugin the pipeline trains with. */
const PLUGIN = '@peftkit/lora';
/** Every method plugin: each must install, load from its dist/ and register something. */
const PLUGINS = ['@peftkit/lora', '@peftkit/qlora', '@peftkit/adapter', '@peftkit/prefix-tuning', '@peftkit/ia3'];
/** What a user installs: the CLI, the packages it runs on, and the plugins. */
const PACKAGES = ['@peftkit/core', '@peftkit/models', '@peftkit/data', '@peftkit/steps', '@peftkit/cli', ...PLUGINS];

/** A random 1-layer GPT-2 (n_embd 16) saved with the installed @peftkit/models, with the fixture's 21-token BPE tokenizer. */
const MAKE_MODEL = `import { copyFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { initBackend } from '@peftkit/core';
import { createModel, manualSeed, savePretrained } from '@peftkit/models';
const [folder, tokenizerDir] = process.argv.slice(2);
await initBackend('wasm');
manualSeed(11);
const model = createModel({ model_type: 'gpt2', vocab_size: 21, n_positions: 32, n_embd: 16, n_layer: 1, n_head: 2, bos_token_id: 20, eos_token_id: 20, resid_pdrop: 0, embd_pdrop: 0, attn_pdrop: 0 }, 'causal-lm');
mkdirSync(folder, { recursive: true });
savePretrained({ model, source: 'tiny-random-gpt2' }, folder);
model.dispose();
for (const f of ['vocab.json', 'merges.txt', 'tokenizer_config.json', 'special_tokens_map.json']) copyFileSync(join(tokenizerDir, f), join(folder, f));
`;

/** Where each package resolves from the project, as Node resolves it without extra conditions. */
const RESOLVE = `for (const n of process.argv.slice(1)) console.log(n + ' ' + import.meta.resolve(n));`;

/** Lines of words the fixture's 21-token vocabulary covers. */
function corpus(): string {
  const words = ['lowest', 'newer', 'wider', 'lower', 'slow', 'wide', 'new', 'low'];
  return Array.from({ length: 40 }, (_, i) => JSON.stringify({ text: Array.from({ length: 5 }, (_, k) => words[(i * 3 + k * (1 + (i % 3))) % words.length]).join(' ') })).join('\n') + '\n';
}

function pipeline(withPlugins: boolean) {
  return {
    name: 'packed-lora',
    seed: 3,
    backend: 'wasm',
    ...(withPlugins ? { plugins: [PLUGIN] } : {}),
    steps: {
      base: { kind: 'load', settings: { model: 'gpt2' } },
      data: { kind: 'dataset', inputs: { tokenizer: 'base' }, settings: { path: 'data.jsonl', shape: 'text', max_length: 16 } },
      peft: { kind: 'inject', inputs: { model: 'base' }, settings: { method: 'lora', config: { r: 2, lora_alpha: 4, target_modules: ['c_attn', 'c_proj'], fan_in_fan_out: true } } },
      fit: { kind: 'train', inputs: { model: 'peft', dataset: 'data' }, settings: { learning_rate: 0.02, max_steps: 4, per_device_train_batch_size: 4, logging_steps: 1, save_steps: 4 } },
      out: { kind: 'export', inputs: { model: 'fit' }, settings: {} },
    },
  };
}

/** The tensors of a .safetensors file (F32 only), by name. */
function readSafetensors(file: string): Map<string, { shape: number[]; data: Float32Array }> {
  const buf = readFileSync(file);
  const n = Number(buf.readBigUInt64LE(0));
  const header = JSON.parse(buf.subarray(8, 8 + n).toString('utf8'));
  const out = new Map<string, { shape: number[]; data: Float32Array }>();
  for (const [name, t] of Object.entries<any>(header)) {
    if (name === '__metadata__') continue;
    assert.equal(t.dtype, 'F32', `${name}: dtype`);
    const [a, b] = t.data_offsets;
    const bytes = buf.subarray(8 + n + a, 8 + n + b);
    out.set(name, { shape: t.shape, data: new Float32Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength)) });
  }
  return out;
}

const kb = (bytes: number) => `${(bytes / 1024).toFixed(1)} KiB`;

const npm = npmVersion();

test('packed packages install into an empty project and the installed CLI trains and exports with the packed LoRA plugin', { skip: npm ? false : 'npm is not installed: cannot pack or install the packages', timeout: 300_000 }, async (t) => {
  const root = repoRoot();
  const fixture = resolve(root, '..', 'shared', 'fixtures', 'hf', 'ckpt-gpt2-tiny-vocab');
  assert.ok(existsSync(join(fixture, 'vocab.json')), `tokenizer fixture missing: ${fixture}`);
  const work = realpathSync(mkdtempSync(join(tmpdir(), 'peftkit-packed-')));
  const keep = process.env.PEFTKIT_KEEP_PACKED === '1';
  try {
    // 1. dist/ for every package the tarballs carry (incremental: a no-op when up to date).
    const built = buildPackages(PACKAGES, root);
    t.diagnostic(`npm ${npm}; tsc -b ${PACKAGES.length} packages: ${built.seconds.toFixed(1)} s`);

    // 2. Tarballs: compiled JavaScript, declarations and JSON schemas; no TypeScript sources or tests.
    const tarDir = join(work, 'tarballs');
    mkdirSync(tarDir);
    const tarballs = packPackages(PACKAGES, tarDir, root);
    const workspace = workspacePackages(root);
    for (const tb of tarballs) {
      t.diagnostic(`${tb.name}@${tb.version}: ${kb(tb.size)} packed, ${kb(tb.unpackedSize)} unpacked, ${tb.files.length} files`);
      for (const f of ['package.json', 'dist/index.js', 'dist/index.d.ts']) assert.ok(tb.files.includes(f), `${tb.name}: tarball lacks ${f}`);
      const stray = tb.files.filter((f) => (/\.ts$/.test(f) && !/\.d\.ts$/.test(f)) || /\.test\./.test(f) || /tsbuildinfo$/.test(f));
      assert.deepEqual(stray, [], `${tb.name}: tarball carries sources or tests`);
      // prepack prunes dist/ files whose source is gone; none may ship.
      const dir = workspace.get(tb.name)!.dir;
      const orphans = tb.files.filter((f) => f.startsWith('dist/')).filter((f) => {
        const src = sourceOf(f.slice('dist/'.length));
        return src !== undefined && !existsSync(join(dir, 'src', src));
      });
      assert.deepEqual(orphans, [], `${tb.name}: tarball carries compiled files of deleted sources`);
    }
    const plugin = tarballs.find((tb) => tb.name === PLUGIN)!;
    assert.ok(plugin.files.includes('dist/config.schema.json'), `${PLUGIN}: the settings schema its dist/ imports is not in the tarball`);

    // 3. An empty project outside the workspace.
    const project = join(work, 'project');
    mkdirSync(project);
    assert.ok(!project.startsWith(root + sep), 'the project must not sit inside the workspace');
    const install = installTarballs(project, tarballs, root);
    t.diagnostic(`npm install (${install.mode}): ${install.seconds.toFixed(1)} s${install.firstError ? ` (offline attempt: ${install.firstError})` : ''}`);
    const env = cleanEnv({ PEFTKIT_LOG_LEVEL: 'warn', NO_COLOR: '1' });
    const node = (args: string[]): Ran => run(process.execPath, args, { cwd: project, env });
    const peftkit = (args: string[]): Ran => run('npx', ['--no', 'peftkit', ...args], { cwd: project, env, timeoutMs: 180_000 });

    // Each package resolves to its installed dist/, not to the workspace.
    const resolved = check(node(['--input-type=module', '-e', RESOLVE, ...PACKAGES]), 'resolving the installed packages').stdout.trim().split('\n');
    for (const line of resolved) {
      const [name, url] = line.split(' ');
      assert.equal(url, `file://${join(project, 'node_modules', name, 'dist', 'index.js')}`, `${name} resolves to ${url}`);
    }
    for (const name of PLUGINS) {
      const pj = JSON.parse(readFileSync(join(project, 'node_modules', name, 'package.json'), 'utf8'));
      assert.deepEqual(pj.peftkit, { plugin: true }, `${name}: package.json lacks "peftkit": {"plugin": true}`);
    }
    const installedPlugin = JSON.parse(readFileSync(join(project, 'node_modules', PLUGIN, 'package.json'), 'utf8'));

    // 4. A tiny checkpoint, made with the installed @peftkit/models, and a tiny corpus.
    writeFileSync(join(project, 'make-model.mjs'), MAKE_MODEL);
    check(node(['make-model.mjs', 'gpt2', fixture]), 'saving the tiny GPT-2 with the installed @peftkit/models');
    assert.ok(existsSync(join(project, 'gpt2', 'model.safetensors')) && existsSync(join(project, 'gpt2', 'config.json')));
    writeFileSync(join(project, 'data.jsonl'), corpus());
    writeFileSync(join(project, 'pipeline.json'), JSON.stringify(pipeline(true), null, 2));
    writeFileSync(join(project, 'no-plugins.json'), JSON.stringify(pipeline(false), null, 2));

    // 5. The installed CLI finds the plugin among the installed packages and lists its method.
    const listed = JSON.parse(check(peftkit(['plugins', '--json']), 'peftkit plugins --json').stdout);
    assert.deepEqual(listed.failed, []);
    assert.deepEqual(listed.plugins.map((p: any) => p.name).sort(), ['@peftkit/steps', ...PLUGINS].sort());
    for (const name of PLUGINS) {
      const contributed = [...listed.methods, ...listed.quantSchemes, ...listed.stepKinds].filter((x: any) => x.plugin === name).map((x: any) => x.name);
      assert.ok(contributed.length > 0, `${name} loaded but registered no method, quantization scheme or step kind`);
      t.diagnostic(`${name}: ${contributed.join(', ')}`);
    }
    assert.equal(listed.plugins.find((p: any) => p.name === PLUGIN).version, installedPlugin.version);
    const lora = listed.methods.find((m: any) => m.name === 'lora');
    assert.ok(lora, `no "lora" method among ${listed.methods.map((m: any) => m.name).join(', ')}`);
    assert.equal(lora.plugin, PLUGIN);
    assert.equal(lora.peftType, 'LORA');
    assert.ok(lora.config.some((f: any) => f.name === 'r'), 'the method lists its config fields (from its packed schema)');

    // 6. validate: with discovery off, the pipeline's "plugins" list is what brings the method in.
    assert.equal(check(peftkit(['validate', 'pipeline.json', '--no-discover']), 'peftkit validate').stdout.trim(), 'ok pipeline.json');
    const without = peftkit(['validate', 'no-plugins.json', '--no-discover']);
    assert.equal(without.status, 1, `a pipeline that does not list ${PLUGIN} validated without it:\n${without.stdout}${without.stderr}`);
    assert.match(without.stderr, /lora/);

    // 7. run: load → dataset → inject (LoRA) → train 4 steps → export, from the installed packages only.
    const ran = check(peftkit(['run', 'pipeline.json', '--no-discover']), 'peftkit run pipeline.json');
    t.diagnostic(`peftkit run: ${ran.seconds.toFixed(1)} s`);
    const runDir = /run folder: (.+)$/m.exec(ran.stdout)?.[1].trim();
    assert.ok(runDir && existsSync(runDir), `no run folder in the output:\n${ran.stdout}`);
    assert.ok(runDir.startsWith(join(project, 'runs') + sep));
    assert.equal(JSON.parse(readFileSync(join(runDir, 'status.json'), 'utf8')).state, 'succeeded');
    const environment = JSON.parse(readFileSync(join(runDir, 'environment.json'), 'utf8'));
    assert.ok(environment.plugins.some((p: any) => p.name === PLUGIN), `environment.json plugins: ${JSON.stringify(environment.plugins)}`);

    const metrics = readFileSync(join(runDir, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    // Each row names its pipeline step: `pipeline_step` (earlier builds of the core wrote `step`).
    const rows = metrics.filter((m) => (m.pipeline_step ?? m.step) === 'fit' && 'loss' in m);
    assert.deepEqual(rows.map((m) => m.global_step), [1, 2, 3, 4]);
    for (const r of rows) assert.ok(Number.isFinite(r.loss) && r.loss > 0, `step ${r.global_step}: loss ${r.loss}`);

    const adapterDir = join(runDir, 'out', 'adapter');
    const config = JSON.parse(readFileSync(join(adapterDir, 'adapter_config.json'), 'utf8'));
    assert.equal(config.peft_type, 'LORA');
    assert.equal(config.r, 2);
    assert.deepEqual([...config.target_modules].sort(), ['c_attn', 'c_proj']);
    const tensors = readSafetensors(join(adapterDir, 'adapter_model.safetensors'));
    const cAttnB = tensors.get('base_model.model.transformer.h.0.attn.c_attn.lora_B.weight');
    assert.ok(cAttnB, `adapter tensors: ${[...tensors.keys()].join(', ')}`);
    assert.deepEqual(cAttnB.shape, [48, 2]); // [3 * n_embd, r]
    // LoRA starts B at zero (Hu et al. 2021, section 4.1): a non-zero B is what training wrote.
    for (const [name, { data }] of tensors) {
      assert.ok(data.every(Number.isFinite), `${name} has non-finite values`);
      if (name.includes('lora_B')) assert.ok(data.some((v) => v !== 0), `${name} is still zero: the adapter was not trained`);
    }
  } finally {
    if (keep) t.diagnostic(`kept ${work}`);
    else rmSync(work, { recursive: true, force: true });
  }
});
