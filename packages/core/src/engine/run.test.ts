import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, readlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { fakePlugin } from '../testing/fake-steps.js';
import { PipelineValidationError } from './errors.js';
import { preparePipeline, runPipeline } from './run.js';

const dir = mkdtempSync(join(tmpdir(), 'peftkit-run-'));
const pipeline = {
  name: 'demo', backend: 'cpu',
  steps: {
    fit: { kind: 'train', inputs: { model: 'peft', dataset: 'data' }, settings: { steps: 2 } },
    peft: { kind: 'inject', inputs: { model: 'base' }, settings: { method: 'toy' } },
    base: { kind: 'load', settings: { model: 'm' } },
    data: { kind: 'dataset' },
  },
};
const file = join(dir, 'demo.json');
writeFileSync(file, JSON.stringify(pipeline));

test('runs steps in dependency order and writes the run folder', async () => {
  const log: string[] = [];
  const prepared = await preparePipeline(file, ['steps.fit.settings.steps=5'], { builtins: [fakePlugin(log)] });
  const res = await runPipeline(prepared, { runsDir: join(dir, 'runs') });
  assert.equal(res.backend.name, 'cpu');
  const order = log.map((l) => l.split(':')[0]);
  assert.ok(order.indexOf('base') < order.indexOf('peft') && order.indexOf('peft') < order.indexOf('fit'));
  assert.equal(log.find((l) => l.startsWith('fit:')), 'fit:{"steps":5,"lr":0.001}:dataset,model');
  assert.equal(res.outputs.get('fit.metrics'), 'fit.metrics');
  assert.equal(readlinkSync(join(dir, 'runs', 'demo', 'latest')), res.runDir.split('/').pop());
  const resolved = JSON.parse(readFileSync(join(res.runDir, 'pipeline.resolved.json'), 'utf8'));
  assert.equal(resolved.steps.fit.settings.steps, 5);
  assert.equal(JSON.parse(readFileSync(join(res.runDir, 'status.json'), 'utf8')).state, 'succeeded');
  assert.equal(JSON.parse(readFileSync(join(res.runDir, 'environment.json'), 'utf8')).backend, 'cpu');
  assert.ok(existsSync(join(res.runDir, 'run.log')));
});

test('an aborted run stops before the next step and says so', async () => {
  const ac = new AbortController();
  ac.abort();
  const prepared = await preparePipeline(file, [], { builtins: [fakePlugin()] });
  const res = await runPipeline(prepared, { runsDir: join(dir, 'runs'), signal: ac.signal });
  assert.equal(res.interrupted, true);
  assert.equal(JSON.parse(readFileSync(join(res.runDir, 'status.json'), 'utf8')).state, 'interrupted');
});

test('a listed plugin that is not installed is reported at its pointer', async () => {
  const f = join(dir, 'bad.json');
  writeFileSync(f, JSON.stringify({ ...pipeline, plugins: ['@peftkit/no-such-plugin'] }));
  await assert.rejects(preparePipeline(f, [], { builtins: [fakePlugin()] }), (e: unknown) => {
    assert.ok(e instanceof PipelineValidationError);
    assert.equal(e.issues.length, 1);
    assert.equal(e.issues[0].pointer, '/plugins/0');
    assert.match(e.issues[0].message, /not installed/);
    return true;
  });
});

test('a file that is not JSON is one issue with line and column', async () => {
  const f = join(dir, 'broken.json');
  writeFileSync(f, '{\n  "name": "x",\n  "steps": {,}\n}');
  await assert.rejects(preparePipeline(f, [], { builtins: [fakePlugin()] }), (e: unknown) => {
    assert.ok(e instanceof PipelineValidationError);
    assert.equal(e.issues.length, 1);
    assert.match(e.issues[0].message, /not valid JSON at line 3/);
    return true;
  });
});
