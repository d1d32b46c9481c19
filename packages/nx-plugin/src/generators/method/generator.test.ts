import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
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
  const files = ['package.json', 'tsconfig.json', 'README.md', ...['config.schema.json', 'config.generated.ts', 'layer.ts', 'model.ts', 'module.ts', 'index.ts', 'scaled-out.test.ts'].map((f) => `src/${f}`)];
  for (const f of files) assert.ok(tree.exists(`${root}/${f}`), `${f} missing`);
  assert.deepEqual(tree.children(`${root}/src`).sort(), files.filter((f) => f.startsWith('src/')).map((f) => f.slice(4)).sort());

  const pkg = readJson(tree, `${root}/package.json`);
  assert.equal(pkg.name, '@peftkit/scaled-out');
  assert.equal(pkg.type, 'module');
  assert.deepEqual(pkg.peftkit, { plugin: true });
  assert.deepEqual(pkg.peerDependencies, { '@peftkit/core': '0.3.0', '@peftkit/models': '0.1.0' });
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
  assert.match(model, /export const scaledOutMethod: PeftMethod<ScaledOutConfig, Module, AdapterHandle>/);
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

test('a generated plugin, linked into node_modules, is listed by `peftkit plugins` and its own test passes', async () => {
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
    assert.match(run.stdout, /^# pass 4$/m);
    assert.match(run.stdout, /^# fail 0$/m);
  } finally {
    rmSync(scratch, { recursive: true, force: true });
  }
});
