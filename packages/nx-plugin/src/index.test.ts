import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import type { CreateNodesContext, CreateNodesResult, TargetConfiguration } from '@nx/devkit';
// Nx's own resolution of a task's outputs, to check which folders each configuration caches.
import { getOutputsForTargetAndConfiguration } from 'nx/src/tasks-runner/utils';
import { createNodes, PEFTKIT_FILES } from './index';

function workspace(files: Record<string, string>): string {
  const root = mkdtempSync(join(tmpdir(), 'peftkit-nx-'));
  for (const [path, content] of Object.entries(files)) {
    mkdirSync(join(root, path, '..'), { recursive: true });
    writeFileSync(join(root, path), content);
  }
  return root;
}

async function nodes(root: string, files: string[], options = {}): Promise<Map<string, CreateNodesResult>> {
  const context: CreateNodesContext = { workspaceRoot: root, nxJsonConfiguration: {} };
  return new Map(await createNodes[1](files, options, context));
}

const target = (r: CreateNodesResult | undefined, project: string, name: string) => r?.projects?.[project]?.targets?.[name] as TargetConfiguration;

test('each pipeline file becomes a target with a run and a dry-run configuration', async () => {
  const root = workspace({
    'pipelines/lora-gpt2.json': JSON.stringify({
      name: 'lora-gpt2',
      description: 'LoRA on a tiny GPT-2',
      dependsOn: ['tokenizer'],
      outputs: ['../models/lora-gpt2/', './reports/lora'],
      steps: {
        base: { kind: 'load', settings: { model: '../models/base' } },
        data: { kind: 'dataset', settings: { path: 'data/train.csv', name: 'not-a-file', remote: 'https://example.com/x' } },
      },
    }),
    'models/base/config.json': '{}',
    'pipelines/data/train.csv': 'a,b\n',
    'pipelines/project.json': '{"name": "pipelines"}',
  });
  try {
    const r = await nodes(root, ['pipelines/lora-gpt2.json', 'pipelines/project.json'], { peftkitCommand: 'peftkit' });
    assert.deepEqual(r.get('pipelines/project.json'), {});
    const t = target(r.get('pipelines/lora-gpt2.json'), 'pipelines', 'lora-gpt2');
    assert.equal(t.executor, 'nx:run-commands');
    assert.equal(t.options.command, 'peftkit run pipelines/lora-gpt2.json');
    assert.equal(t.defaultConfiguration, 'run');
    assert.equal(t.configurations!['dry-run'].command, 'peftkit run pipelines/lora-gpt2.json --dry-run');
    assert.deepEqual(t.dependsOn, ['tokenizer']);
    assert.equal(t.cache, true);
    assert.equal(t.metadata!.description, 'LoRA on a tiny GPT-2');
    assert.deepEqual(
      t.inputs!.filter((i) => typeof i === 'string' && !i.includes('/src/') && !i.includes('package-lock')),
      ['{projectRoot}/lora-gpt2.json', '{workspaceRoot}/models/base/**/*', '{workspaceRoot}/pipelines/data/train.csv'],
    );
    assert.ok(t.inputs!.includes('{workspaceRoot}/plugins/*/src/**/*'));
    assert.ok(t.inputs!.some((i) => typeof i === 'object' && 'dependentTasksOutputFiles' in i));
    // A quick run (PEFTKIT_QUICK=1) hashes differently from a full one.
    assert.ok(t.inputs!.some((i) => typeof i === 'object' && 'env' in i && i.env === 'PEFTKIT_QUICK'));

    // What Nx caches: the declared folders for a real run, nothing for a dry run.
    const node = { name: 'pipelines', type: 'app' as const, data: { root: 'pipelines', targets: { 'lora-gpt2': t } } };
    assert.deepEqual(getOutputsForTargetAndConfiguration({ project: 'pipelines', target: 'lora-gpt2', configuration: 'run' }, {}, node), ['models/lora-gpt2', 'pipelines/reports/lora']);
    assert.deepEqual(getOutputsForTargetAndConfiguration({ project: 'pipelines', target: 'lora-gpt2', configuration: 'dry-run' }, {}, node), []);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test('a pipeline that is not JSON still gets a target (named after the file) whose dry run reports the error', async () => {
  const root = workspace({ 'pipelines/broken.json': '{ "name": "broken", ' });
  try {
    const t = target((await nodes(root, ['pipelines/broken.json'])).get('pipelines/broken.json'), 'pipelines', 'broken');
    assert.equal(t.configurations!['dry-run'].command, 'node packages/cli/bin/peftkit.js run pipelines/broken.json --dry-run');
    assert.deepEqual(t.outputs, []);
    assert.equal(t.dependsOn, undefined);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test('workspace packages get a test target, and a build target when they have a tsconfig.json', async () => {
  const root = workspace({ 'packages/core/package.json': '{}', 'packages/core/tsconfig.json': '{}', 'packages/nx-plugin/package.json': '{}' });
  try {
    const r = await nodes(root, ['packages/core/package.json', 'packages/nx-plugin/package.json']);
    const core = r.get('packages/core/package.json')!.projects!['packages/core'].targets!;
    assert.equal(core.test.options.command, 'node tools/test.mjs {projectRoot}/src');
    assert.equal(core.build.options.command, 'tsc -b {projectRoot}');
    assert.deepEqual(core.build.dependsOn, ['^build']);
    assert.deepEqual(Object.keys(r.get('packages/nx-plugin/package.json')!.projects!['packages/nx-plugin'].targets!), ['test']);
    const off = await nodes(root, ['packages/core/package.json'], { packageTargets: false });
    assert.deepEqual(off.get('packages/core/package.json'), {});
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test('the file pattern covers pipelines and the workspace packages', () => {
  assert.equal(PEFTKIT_FILES, '{pipelines/*.json,packages/*/package.json,plugins/*/package.json}');
});
