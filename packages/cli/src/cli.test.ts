import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, relative } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import testPlugin from '../test-fixtures/test-plugin.js';
import { runCli, type CliOptions } from './cli.js';
import type { PluginsReport } from './describe.js';

const here = dirname(fileURLToPath(import.meta.url));
const root = join(here, '..', '..', '..');
const fixture = (name: string) => relative(root, join(here, '..', 'test-fixtures', name));

/** Runs the CLI in-process from the repo root with the test plugin as the only built-in. */
async function cli(args: string[], opts: CliOptions = {}) {
  let out = '';
  let err = '';
  const code = await runCli(args, { cwd: root, builtins: [testPlugin], out: (s) => void (out += s), err: (s) => void (err += s), ...opts });
  return { code, out, err };
}

test('validate accepts a valid pipeline', async () => {
  const r = await cli(['validate', '--no-discover', fixture('valid.json')]);
  assert.equal(r.err, '');
  assert.equal(r.out, `ok ${fixture('valid.json')}\n`);
  assert.equal(r.code, 0);
});

// Each broken input gives exactly one issue: `file: /pointer: message` and a `hint:` line.
const broken: [file: string, pointer: string, message: RegExp, hint: RegExp][] = [
  ['not-json.json', '(document)', /not valid JSON at line 5, column 3/, /trailing comma/],
  ['unknown-kind.json', '/steps/fit/kind', /unknown step kind "trian"/, /did you mean "train"/],
  ['missing-step.json', '/steps/fit/inputs/dataset', /reference to a step that does not exist: "dta"/, /did you mean "data"/],
  ['cycle.json', '/steps/a/inputs', /steps form a cycle: a -> b -> a/, /cannot consume, directly or not, its own output/],
  ['port-mismatch.json', '/steps/q/inputs/model', /port type mismatch: input "model" of "quantize" accepts base-model, but "peft.model" \(inject\) produces peft-model/, /quantize the base model before injecting/],
  ['method-setting-type.json', '/steps/peft/settings/config/r', /must be of type integer/, /rank of the update/],
  ['unknown-plugin.json', '/plugins/0', /unknown plugin package "@peftkit\/does-not-exist".*not installed/, /install the package, fix its name, or remove it/],
];

for (const [name, pointer, message, hint] of broken) {
  test(`validate reports ${name} with file, pointer and hint`, async () => {
    const file = fixture(name);
    const r = await cli(['validate', '--no-discover', file]);
    assert.equal(r.code, 1);
    assert.equal(r.out, '');
    const lines = r.err.trimEnd().split('\n');
    assert.equal(lines.length, 2, r.err);
    assert.ok(lines[0].startsWith(`${file}: ${pointer}: `), lines[0]);
    assert.match(lines[0], message);
    assert.match(lines[1], /^ {2}hint: /);
    assert.match(lines[1], hint);
  });
}

test('validate checks every file and fails when any is broken', async () => {
  const r = await cli(['validate', '--no-discover', fixture('valid.json'), fixture('cycle.json')]);
  assert.equal(r.code, 1);
  assert.equal(r.out, `ok ${fixture('valid.json')}\n`);
  assert.match(r.err, /cycle\.json: \/steps\/a\/inputs: steps form a cycle/);
});

test('validate skips an Nx project.json among the pipeline files', async () => {
  const r = await cli(['validate', '--no-discover', fixture('valid.json'), 'pipelines/project.json']);
  assert.equal(r.code, 0);
  assert.equal(r.out, `ok ${fixture('valid.json')}\nskip pipelines/project.json (an Nx project file, not a pipeline)\n`);
});

test('a missing file is a user error without a stack trace', async () => {
  const r = await cli(['validate', '--no-discover', 'nope/missing.json']);
  assert.equal(r.code, 1);
  assert.match(r.err, /^nope\/missing\.json: \(document\): cannot read pipeline file nope\/missing\.json: ENOENT\n {2}hint: check the path\n$/);
  const run = await cli(['run', '--no-discover', 'nope/missing.json']);
  assert.equal(run.code, 1);
  assert.match(run.err, /^nope\/missing\.json: cannot read pipeline file nope\/missing\.json: ENOENT\n {2}hint: check the path\n$/);
});

test('a malformed --set is a user error', async () => {
  const r = await cli(['run', '--no-discover', '--dry-run', fixture('valid.json'), '--set', 'novalue']);
  assert.equal(r.code, 1);
  assert.match(r.err, /^error: --set novalue: expected key=value/);
  assert.doesNotMatch(r.err, /\n\s+at /);
});

test('an unexpected error prints its stack', async () => {
  const r = await cli(['plugins', '--no-discover'], { builtins: undefined, env: { PEFTKIT_BUILTIN_PLUGINS: fixture('no-such-module.ts') } });
  assert.equal(r.code, 1);
  assert.match(r.err, /no-such-module/);
  assert.match(r.err, /\n\s+at /);
});

test('run --dry-run prints the plan with settings after defaults and overrides, and runs nothing', async () => {
  const runs = mkdtempSync(join(tmpdir(), 'peftkit-cli-'));
  try {
    const r = await cli(['run', '--no-discover', fixture('valid.json'), '--dry-run', '--runs-dir', runs, '--set', 'steps.fit.settings.learning_rate=0.5']);
    assert.equal(r.code, 0, r.err);
    const lines = r.out.split('\n');
    assert.equal(lines[0], `pipeline "valid" (${fixture('valid.json')}): 4 steps, seed 42, backend auto`);
    assert.equal(lines[1], 'plugins: test-steps@0.0.1');
    const order = lines.map((l) => /^\s+\d+\. (\w+) \[(\w+)\]$/.exec(l)).filter(Boolean).map((m) => m![1]);
    assert.equal(order.length, 4);
    assert.ok(order.indexOf('base') < order.indexOf('peft') && order.indexOf('peft') < order.indexOf('fit') && order.indexOf('data') < order.indexOf('fit'), order.join());
    const fit = lines.indexOf(lines.find((l) => /\. fit \[train\]$/.test(l))!);
    assert.equal(lines[fit + 1].trim(), 'inputs:   model <- peft.model, dataset <- data.dataset');
    assert.equal(lines[fit + 2].trim(), 'outputs:  model (peft-model), metrics (metrics)');
    assert.deepEqual(JSON.parse(lines[fit + 3].trim().replace(/^settings: /, '')), { max_steps: 3, learning_rate: 0.5 });
    const peft = lines.find((l) => l.trim().startsWith('settings: {"method"'))!;
    assert.deepEqual(JSON.parse(peft.trim().replace(/^settings: /, '')), { method: 'toy', config: { r: 4, target_modules: ['c_attn'] } });
    assert.deepEqual(readdirSync(runs), []);
  } finally {
    rmSync(runs, { recursive: true, force: true });
  }
});

test('run executes the steps and prints the run folder', async () => {
  const runs = mkdtempSync(join(tmpdir(), 'peftkit-cli-'));
  try {
    const r = await cli(['run', '--no-discover', fixture('valid.json'), '--runs-dir', runs, '--set', 'steps.fit.settings.max_steps=7']);
    assert.equal(r.code, 0, r.err);
    const runDir = /^run folder: (.+)$/m.exec(r.out)![1];
    assert.ok(runDir.startsWith(join(runs, 'valid')));
    assert.equal(JSON.parse(readFileSync(join(runDir, 'status.json'), 'utf8')).state, 'succeeded');
    assert.deepEqual(JSON.parse(readFileSync(join(runDir, 'fit', 'ran.json'), 'utf8')), { settings: { max_steps: 7, learning_rate: 0.001 }, inputs: ['dataset', 'model'] });
  } finally {
    rmSync(runs, { recursive: true, force: true });
  }
});

test('an abort stops the run with exit code 130 after the step checkpoints', async () => {
  const runs = mkdtempSync(join(tmpdir(), 'peftkit-cli-'));
  try {
    const ac = new AbortController();
    setTimeout(() => ac.abort(), 300);
    const r = await cli(['run', '--no-discover', fixture('wait.json'), '--runs-dir', runs, '--set', 'description=held'], { signal: ac.signal });
    assert.equal(r.code, 130);
    const runDir = /^run folder: (.+)$/m.exec(r.out)![1];
    assert.equal(JSON.parse(readFileSync(join(runDir, 'status.json'), 'utf8')).state, 'interrupted');
    assert.deepEqual(JSON.parse(readFileSync(join(runDir, 'hold', 'checkpoint.json'), 'utf8')), { aborted: true });
    assert.ok(r.err.includes(`continue with: peftkit run ${fixture('wait.json')} --resume --runs-dir ${runs} --set 'description=held'`), r.err);
  } finally {
    rmSync(runs, { recursive: true, force: true });
  }
});

test('a failing step reports the step and the run folder once', async () => {
  const runs = mkdtempSync(join(tmpdir(), 'peftkit-cli-'));
  try {
    const r = await cli(['run', '--no-discover', fixture('fail.json'), '--runs-dir', runs]);
    assert.equal(r.code, 1);
    assert.match(r.err, /^run failed in step "oops": boom: the fail step always fails\nrun folder: .+fail\/\d{8}-\d{6}.* \(log: run\.log\)\n$/);
  } finally {
    rmSync(runs, { recursive: true, force: true });
  }
});

test('schema composes the step kinds and the methods config', async () => {
  const r = await cli(['schema', '--no-discover']);
  assert.equal(r.code, 0, r.err);
  const s = JSON.parse(r.out);
  assert.equal(s.$schema, 'http://json-schema.org/draft-07/schema#');
  const variants = s.definitions.Step.oneOf as any[];
  assert.deepEqual(variants.map((v) => v.properties.kind.const).sort(), ['dataset', 'fail', 'inject', 'load', 'quantize', 'train', 'wait']);
  const inject = variants.find((v) => v.properties.kind.const === 'inject');
  assert.deepEqual(inject.properties.settings.properties.method.enum, ['toy']);
  assert.equal(inject.properties.settings.allOf[0].then.properties.config.properties.r.default, 8);
});

test('schema --out writes the file', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'peftkit-cli-'));
  try {
    const r = await cli(['schema', '--no-discover', '--out', join(dir, 'pipeline.schema.json')]);
    assert.equal(r.code, 0, r.err);
    assert.equal(JSON.parse(readFileSync(join(dir, 'pipeline.schema.json'), 'utf8')).title, 'Pipeline');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('plugins lists packages, step kinds with ports and settings, and methods with config defaults', async () => {
  const json = await cli(['plugins', '--no-discover', '--json']);
  assert.equal(json.code, 0, json.err);
  const report = JSON.parse(json.out) as PluginsReport;
  assert.deepEqual(report.plugins, [{ name: 'test-steps', version: '0.0.1' }]);
  const train = report.stepKinds.find((k) => k.name === 'train')!;
  assert.equal(train.plugin, 'test-steps');
  assert.deepEqual(train.inputs, { model: ['peft-model'], dataset: ['dataset'] });
  assert.deepEqual(train.outputs, { model: 'peft-model', metrics: 'metrics' });
  assert.deepEqual(train.settings.map((f) => [f.name, f.type, f.default]), [['max_steps', 'integer', 10], ['learning_rate', 'number', 0.001]]);
  assert.deepEqual(report.methods.map((m) => [m.name, m.peftType, m.family]), [['toy', 'TOY', 'adapter-layers']]);
  assert.deepEqual(report.methods[0].config.map((f) => [f.name, f.type, f.default]), [['r', 'integer', 8], ['target_modules', 'string[]', ['c_attn']]]);

  const text = await cli(['plugins', '--no-discover']);
  assert.match(text.out, /^plugins:\n {2}test-steps@0\.0\.1\n/);
  assert.match(text.out, /\n {2}train {2}\[test-steps\] {2}test train\n {4}inputs: {2}model \(peft-model\), dataset \(dataset\)\n {4}outputs: model \(peft-model\), metrics \(metrics\)\n {4}settings:\n {6}max_steps: integer = 10\n/);
  assert.match(text.out, /\n {2}toy {2}\[test-steps\] {2}peft_type TOY, adapter-layers: toy method\n {4}config:\n {6}r: integer = 8\n {6}target_modules: string\[\] = \["c_attn"\]\n/);
  assert.match(text.out, /quantization schemes:\n {2}\(none\)$/m);
});

test('every subcommand has --help', async () => {
  for (const cmd of ['run', 'validate', 'schema', 'plugins']) {
    const r = await cli([cmd, '--help']);
    assert.equal(r.code, 0);
    assert.match(r.out, new RegExp(`^Usage: peftkit ${cmd} `));
  }
  const run = await cli(['run', '--help']);
  for (const o of ['--set <key=value>', '--dry-run', '--resume', '--runs-dir <dir>']) assert.ok(run.out.includes(o), o);
  const bad = await cli(['frobnicate']);
  assert.equal(bad.code, 1);
  assert.match(bad.err, /unknown command 'frobnicate'/);
});

test('the example pipelines in pipelines/ validate with the real built-in plugins', async (t) => {
  const dir = join(root, 'pipelines');
  const files = existsSync(dir) ? readdirSync(dir).filter((f) => f.endsWith('.json') && f !== 'project.json').sort() : [];
  if (!files.length) return t.skip('no pipelines/*.json yet');
  const r = await cli(['validate', ...files.map((f) => join('pipelines', f))], { builtins: undefined });
  assert.equal(r.code, 0, r.err);
  assert.equal(r.out, files.map((f) => `ok ${join('pipelines', f)}\n`).join(''));
});

test('every `peftkit <command>` named in the composed schema\'s descriptions is a command of this CLI', async () => {
  const schema = readFileSync(join(root, 'pipelines', 'schema', 'pipeline.schema.json'), 'utf8');
  const named = [...new Set([...schema.matchAll(/`peftkit ([a-z-]+)/g)].map((m) => m[1]))];
  assert.ok(named.length > 0, 'the schema names at least one command');
  const help = await cli(['--help']);
  const commands = new Set([...help.out.matchAll(/^ {2}([a-z-]+)/gm)].map((m) => m[1]));
  assert.ok(commands.has('plugins') && commands.has('run'), help.out);
  for (const c of named) assert.ok(commands.has(c), `the schema points users to \`peftkit ${c}\`, which does not exist (commands: ${[...commands].join(', ')})`);
});
