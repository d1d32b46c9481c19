import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { test } from 'node:test';
import { readJson, type Tree } from '@nx/devkit';
import { createTreeWithEmptyWorkspace } from '@nx/devkit/testing';
import { methodGenerator } from './generator';

const workspaceRoot = join(__dirname, '..', '..', '..', '..', '..');

async function generate(name: string, extra: Record<string, string> = {}): Promise<Tree> {
  const tree = createTreeWithEmptyWorkspace();
  tree.write('packages/core/package.json', JSON.stringify({ name: '@peftkit/core', version: '0.3.0' }));
  await methodGenerator(tree, { name, ...extra });
  return tree;
}

test('the generator scaffolds a plugin package with the method files, its config type and a test', async () => {
  const tree = await generate('scaled-out');
  const root = 'plugins/scaled-out';
  const files = ['package.json', 'tsconfig.json', 'README.md', ...['config.schema.json', 'config.generated.ts', 'config.ts', 'layer.ts', 'model.ts', 'format.ts', 'method.ts', 'module.ts', 'index.ts', 'scaled-out.test.ts'].map((f) => `src/${f}`)];
  for (const f of files) assert.ok(tree.exists(`${root}/${f}`), `${f} missing`);
  assert.deepEqual(tree.children(`${root}/src`).sort(), files.filter((f) => f.startsWith('src/')).map((f) => f.slice(4)).sort());

  const pkg = readJson(tree, `${root}/package.json`);
  assert.equal(pkg.name, '@peftkit/scaled-out');
  assert.equal(pkg.type, 'module');
  assert.deepEqual(pkg.peftkit, { plugin: true });
  assert.deepEqual(pkg.peerDependencies, { '@peftkit/core': '^0.3.0', '@peftkit/models': '^0.1.0' });
  assert.equal(pkg.exports['.']['peftkit-source'], './src/index.ts');

  const tsconfig = readJson(tree, `${root}/tsconfig.json`);
  assert.equal(tsconfig.extends, '../../tsconfig.base.json');
  assert.deepEqual(tsconfig.references, [{ path: '../../packages/core' }, { path: '../../packages/models' }]);

  const schema = readJson(tree, `${root}/src/config.schema.json`);
  assert.equal(schema.title, 'ScaledOutConfig');
  for (const [k, s] of Object.entries<Record<string, unknown>>(schema.properties)) assert.ok(s.description && s.default !== undefined, `${k} needs a description and a default`);
  const generated = tree.read(`${root}/src/config.generated.ts`, 'utf8')!;
  assert.ok(generated.startsWith('/* Generated from plugins/scaled-out/src/config.schema.json by tools/typegen.'));
  assert.match(generated, /export interface ScaledOutConfig \{[\s\S]*target_modules\?: string\[\] \| string;[\s\S]*init_weights\?: boolean;/);

  const model = tree.read(`${root}/src/model.ts`, 'utf8')!;
  assert.match(model, /export const METHOD_NAME = 'scaled-out';/);
  assert.match(model, /save\(dir: string, options: \{ baseModelNameOrPath\?: string \} = \{\}\): string\[\]/);
  const method = tree.read(`${root}/src/method.ts`, 'utf8')!;
  assert.match(method, /export const scaledOutMethod: PeftMethod<ScaledOutConfig, Module, ScaledOutHandle>/);
  assert.match(method, /loadAdapter: \(model, dir, ctx\) => loadScaledOutAdapter\(model, dir, ctx\)/);
  assert.match(method, /recognizesAdapterConfig,/);
  // The author's to-do list is in the sources.
  for (const f of ['config.ts', 'layer.ts', 'model.ts', 'format.ts', 'method.ts']) assert.match(tree.read(`${root}/src/${f}`, 'utf8')!, /AUTHOR:/, f);
  assert.match(tree.read(`${root}/src/layer.ts`, 'utf8')!, /registerParameter\('scaled_out_l'/);
  // Only the public entry points of the workspace packages, never their src/.
  for (const f of files.filter((x) => x.endsWith('.ts'))) assert.doesNotMatch(tree.read(`${root}/${f}`, 'utf8')!, /from '@peftkit\/\w+\/|packages\//, f);
  assert.doesNotMatch(tree.read(`${root}/src/module.ts`, 'utf8')!, /<%|%>/);
});

test('the generator honours --directory and --scope, and refuses bad names and existing folders', async () => {
  const tree = await generate('tiny-scale', { directory: 'extra/methods', scope: '@acme' });
  assert.equal(readJson(tree, 'extra/methods/tiny-scale/package.json').name, '@acme/tiny-scale');
  assert.equal(readJson(tree, 'extra/methods/tiny-scale/tsconfig.json').extends, '../../../tsconfig.base.json');
  await assert.rejects(methodGenerator(tree, { name: 'tiny-scale', directory: 'extra/methods' }), /extra\/methods\/tiny-scale already exists/);
  await assert.rejects(methodGenerator(tree, { name: 'Bad_Name' }), /must be kebab-case/);
});

test('the template builds a plugin the way the real plugins are built (plugins/ia3, written only against the public API, as the reference)', async () => {
  const tree = await generate('shape-check');
  const gen = readJson(tree, 'plugins/shape-check/package.json');
  const real = JSON.parse(readFileSync(join(workspaceRoot, 'plugins', 'ia3', 'package.json'), 'utf8'));
  // `repository` names the peftkit repository itself; a new plugin lives elsewhere.
  assert.deepEqual(Object.keys(gen).sort(), Object.keys(real).filter((k) => k !== 'repository').sort());
  for (const k of ['type', 'license', 'engines', 'exports', 'main', 'types', 'files', 'peftkit', 'scripts', 'nx', 'publishConfig', 'dependencies']) assert.deepEqual(gen[k], real[k], k);
  assert.deepEqual(Object.keys(gen.peerDependencies), Object.keys(real.peerDependencies));
  for (const v of Object.values<string>(gen.peerDependencies)) assert.match(v, /^\^\d+\.\d+\.\d+$/);
  assert.deepEqual(gen.keywords.slice(0, 3), real.keywords.slice(0, 3));

  const genTs = readJson(tree, 'plugins/shape-check/tsconfig.json');
  const realTs = JSON.parse(readFileSync(join(workspaceRoot, 'plugins', 'ia3', 'tsconfig.json'), 'utf8'));
  for (const k of ['extends', 'compilerOptions', 'include', 'exclude']) assert.deepEqual(genTs[k], realTs[k], k);
  assert.deepEqual(genTs.references.map((r: { path: string }) => r.path), realTs.references.map((r: { path: string }) => r.path));

  // The same parts, after HF PEFT's tuners/<method>/: the real plugin's HF format is the template's own format.
  const { readdirSync } = await import('node:fs');
  const realParts = readdirSync(join(workspaceRoot, 'plugins', 'ia3', 'src')).filter((f) => !f.endsWith('.test.ts')).map((f) => (f === 'hf-format.ts' ? 'format.ts' : f)).sort();
  const genParts = tree.children('plugins/shape-check/src').filter((f) => !f.endsWith('.test.ts')).sort();
  assert.deepEqual(genParts, realParts);
});

test('a generated plugin, linked into node_modules, is listed by `peftkit plugins`, its own test passes, and it trains, exports and serves from a pipeline', { timeout: 240_000 }, async () => {
  const name = 'gen-scale';
  const tree = await generate(name, { scope: '@peftkit-test' });
  // A scratch folder inside the workspace (the git-ignored tmp/), so that the plugin resolves
  // @peftkit/core, @peftkit/models, tfjs and inversify from the workspace's node_modules.
  mkdirSync(join(workspaceRoot, 'tmp'), { recursive: true });
  const scratch = mkdtempSync(join(workspaceRoot, 'tmp', 'method-generator-'));
  try {
    for (const change of tree.listChanges()) {
      if (!change.path.startsWith(`plugins/${name}/`) || !change.content) continue;
      mkdirSync(dirname(join(scratch, change.path)), { recursive: true });
      writeFileSync(join(scratch, change.path), change.content);
    }
    mkdirSync(join(scratch, 'node_modules', '@peftkit-test'), { recursive: true });
    symlinkSync(join('..', '..', 'plugins', name), join(scratch, 'node_modules', '@peftkit-test', name));

    const { runCli } = await import('@peftkit/cli');
    let out = '';
    let err = '';
    // No built-ins: this checks discovery of the new package, not the built-in steps.
    const code = await runCli(['plugins', '--json'], { cwd: scratch, builtins: [], out: (s: string) => void (out += s), err: (s: string) => void (err += s) });
    assert.equal(code, 0, err);
    const report = JSON.parse(out);
    assert.ok(report.plugins.some((p: { name: string }) => p.name === `@peftkit-test/${name}`), out);
    const method = report.methods.find((m: { name: string }) => m.name === name);
    assert.ok(method, `method ${name} not listed: ${out}`);
    assert.deepEqual([method.plugin, method.family, method.peftType], [`@peftkit-test/${name}`, 'adapter-layers', null]);
    assert.deepEqual(method.config.map((f: { name: string; default: unknown }) => [f.name, f.default]), [['target_modules', ['c_attn', 'q_proj', 'v_proj']], ['init_weights', true]]);

    const testFile = join(scratch, 'plugins', name, 'src', `${name}.test.ts`);
    // Without NODE_TEST_CONTEXT, which would make the nested runner report to this one instead of printing.
    const { NODE_TEST_CONTEXT: _, ...env } = process.env;
    const run = spawnSync(process.execPath, ['--conditions=peftkit-source', '--import', 'tsx', '--test', '--test-reporter=tap', testFile], { cwd: workspaceRoot, env, encoding: 'utf8' });
    assert.equal(run.status, 0, run.stdout + run.stderr);
    assert.match(run.stdout, /^# pass 5$/m);
    assert.match(run.stdout, /^# fail 0$/m);

    // As a new user would: a pipeline that injects the new method, trains, exports (the handle's
    // own save hook, and merged), then `peftkit generate` loads the exported folder.
    const core = await import('@peftkit/core');
    const models = await import('@peftkit/models');
    await core.initBackend('wasm');
    models.manualSeed(11);
    const fixture = resolve(workspaceRoot, '..', 'shared', 'fixtures', 'hf', 'ckpt-gpt2-tiny-vocab');
    const baseDir = join(scratch, 'base');
    const tiny = models.createModel({ model_type: 'gpt2', vocab_size: 21, n_positions: 32, n_embd: 16, n_layer: 1, n_head: 2, bos_token_id: 20, eos_token_id: 20, resid_pdrop: 0, embd_pdrop: 0, attn_pdrop: 0 }, 'causal-lm');
    mkdirSync(baseDir, { recursive: true });
    models.savePretrained({ model: tiny, source: 'tiny-random-gpt2' }, baseDir);
    tiny.dispose();
    for (const f of ['vocab.json', 'merges.txt', 'tokenizer_config.json', 'special_tokens_map.json']) copyFileSync(join(fixture, f), join(baseDir, f));
    const words = ['lowest', 'newer', 'wider', 'lower', 'slow', 'wide', 'new', 'low'];
    writeFileSync(join(scratch, 'data.jsonl'), Array.from({ length: 16 }, (_, i) => JSON.stringify({ text: Array.from({ length: 5 }, (__, k) => words[(i * 3 + k) % words.length]).join(' ') })).join('\n') + '\n');
    const pipeline = {
      name: 'gen-scale-e2e', seed: 3, backend: 'wasm',
      steps: {
        base: { kind: 'load', settings: { model: 'base' } },
        data: { kind: 'dataset', inputs: { tokenizer: 'base' }, settings: { path: 'data.jsonl', shape: 'text', max_length: 16 } },
        peft: { kind: 'inject', inputs: { model: 'base' }, settings: { method: name, config: { target_modules: ['c_attn'] } } },
        fit: { kind: 'train', inputs: { model: 'peft', dataset: 'data' }, settings: { learning_rate: 0.05, max_steps: 2, per_device_train_batch_size: 4, logging_steps: 1, save_steps: 2 } },
        out: { kind: 'export', inputs: { model: 'fit' }, settings: { merged: true } },
      },
    };
    writeFileSync(join(scratch, 'pipeline.json'), JSON.stringify(pipeline, null, 2));
    let runOut = '';
    let runErr = '';
    const ran = await runCli(['run', 'pipeline.json'], { cwd: scratch, out: (s: string) => void (runOut += s), err: (s: string) => void (runErr += s) });
    assert.equal(ran, 0, runOut + runErr);
    const runDir = /run folder: (.+)$/m.exec(runOut)?.[1].trim();
    assert.ok(runDir && existsSync(runDir), runOut);
    const adapterDir = join(runDir, 'out', 'adapter');
    const saved = JSON.parse(readFileSync(join(adapterDir, 'adapter_config.json'), 'utf8'));
    assert.deepEqual([saved.peftkit_method, saved.peft_type, saved.target_modules], [name, null, ['c_attn']]);
    assert.ok(existsSync(join(adapterDir, 'adapter_model.safetensors')));
    assert.ok(existsSync(join(runDir, 'out', 'adapter-merged', 'model.safetensors')), 'the merged model was exported');

    let genOut = '';
    let genErr = '';
    const gen = await runCli(['generate', '--model', baseDir, '--adapter', `mine=${adapterDir}`, '--use', 'mine', '-n', '3', '--ignore-eos', '--json', 'low'], { cwd: scratch, out: (s: string) => void (genOut += s), err: (s: string) => void (genErr += s) });
    assert.equal(gen, 0, genOut + genErr);
    const result = JSON.parse(genOut);
    const first = Array.isArray(result) ? result[0] : result;
    assert.equal(first.adapter, 'mine');
    assert.equal(first.tokenIds.length, 3);
  } finally {
    rmSync(scratch, { recursive: true, force: true });
  }
});
