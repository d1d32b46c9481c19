import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
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
    assert.match(r.err, new RegExp(`^${fixture('fail.json')}: /steps/oops: boom: the fail step always fails\nrun failed in step "oops"; run folder: .+fail/\\d{8}-\\d{6}.* \\(log: run\\.log\\)\n$`));
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
  // On a fresh clone data/ and models/ do not exist yet: notes say which dependency writes them.
  assert.equal(r.out.split('\n').filter((l) => !l.startsWith('note: ')).join('\n'), files.map((f) => `ok ${join('pipelines', f)}\n`).join(''));
});

test('a user error inside a step names the pipeline file, the JSON pointer in its settings and the hint', async () => {
  const runs = mkdtempSync(join(tmpdir(), 'peftkit-cli-'));
  try {
    const r = await cli(['run', '--no-discover', fixture('fail.json'), '--runs-dir', runs, '--set', 'steps.oops.settings.pointer=/config/target_modules']);
    assert.equal(r.code, 1);
    const lines = r.err.trimEnd().split('\n');
    assert.equal(lines[0], `${fixture('fail.json')}: /steps/oops/settings/config/target_modules: no module matched`);
    assert.equal(lines[1], '  hint: use a name from the list');
    assert.match(lines[2], /^run failed in step "oops"; run folder: /);
  } finally {
    rmSync(runs, { recursive: true, force: true });
  }
});

/** A project folder with the given files (a package.json makes it a project). */
function project(files: Record<string, unknown>): string {
  const dir = mkdtempSync(join(tmpdir(), 'peftkit-project-'));
  for (const [path, content] of Object.entries(files)) {
    mkdirSync(dirname(join(dir, path)), { recursive: true });
    writeFileSync(join(dir, path), typeof content === 'string' ? content : JSON.stringify(content));
  }
  return dir;
}

const withData = (file: string, extra: object = {}) => ({
  name: 'p', ...extra,
  steps: { base: { kind: 'load', settings: { model: 'tiny' } }, data: { kind: 'dataset', settings: { file } }, peft: { kind: 'inject', inputs: { model: 'base' }, settings: { method: 'toy' } }, fit: { kind: 'train', inputs: { model: 'peft', dataset: 'data' } } },
});

test('validate and --dry-run catch a data file that does not exist, naming the pointer and what is there', async () => {
  const dir = project({ 'package.json': '{}', 'pipelines/p.json': withData('../data/trian.jsonl'), 'data/train.jsonl': '{}\n' });
  try {
    for (const args of [['validate'], ['run', '--dry-run']]) {
      const r = await cli([...args, '--no-discover', 'pipelines/p.json'], { cwd: dir });
      assert.equal(r.code, 1, r.out);
      const [first, hint] = r.err.trimEnd().split('\n');
      assert.match(first, /^pipelines\/p\.json: \/steps\/data\/settings\/file: file not found: \.\.\/data\/trian\.jsonl/);
      assert.match(hint, /^ {2}hint: check the path; \.\.\/data holds: train\.jsonl/);
    }
    // With the right path it is valid.
    const ok = await cli(['validate', '--no-discover', 'pipelines/p.json', '--set', 'steps.data.settings.file=../data/train.jsonl'], { cwd: dir });
    assert.equal(ok.code, 0, ok.err);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a missing path that a dependency declares in its outputs is a note, not an error', async () => {
  const dir = project({
    'package.json': '{}',
    'pipelines/p.json': withData('../data/made/train.jsonl', { dependsOn: ['make'] }),
    'pipelines/make.json': { name: 'make', outputs: ['../data/made'], steps: { d: { kind: 'dataset' } } },
  });
  try {
    const r = await cli(['validate', '--no-discover', 'pipelines/p.json'], { cwd: dir });
    assert.equal(r.code, 0, r.err);
    assert.match(r.out, /^note: pipelines\/p\.json: \/steps\/data\/settings\/file: \.\.\/data\/made\/train\.jsonl does not exist yet; "make" \(dependsOn\) writes \.\.\/data\/made \(Nx runs it first; without Nx, run it before this pipeline\)\n/);
    assert.match(r.out, /\nok pipelines\/p\.json\n$/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('runs go to runs/ of the pipeline\'s project, wherever the command is run from', async () => {
  const dir = project({ 'package.json': '{}', 'pipelines/p.json': withData('../data/train.jsonl'), 'data/train.jsonl': '{}\n' });
  const elsewhere = mkdtempSync(join(tmpdir(), 'peftkit-cwd-'));
  try {
    const r = await cli(['run', '--no-discover', join(dir, 'pipelines', 'p.json')], { cwd: elsewhere });
    assert.equal(r.code, 0, r.err);
    assert.ok(/^run folder: (.+)$/m.exec(r.out)![1].startsWith(join(dir, 'runs', 'p')), r.out);
    assert.deepEqual(readdirSync(elsewhere), []);
  } finally {
    rmSync(dir, { recursive: true, force: true });
    rmSync(elsewhere, { recursive: true, force: true });
  }
});

test('--quick applies the pipeline\'s "quick" block before --set; without it the sizes are the file\'s', async () => {
  const dir = project({ 'package.json': '{}', 'pipelines/p.json': withData('../data/train.jsonl', { quick: { description: 'tiny', 'steps.fit.settings.max_steps': 2, 'steps.fit.settings.learning_rate': 0.5 } }), 'data/train.jsonl': '{}\n' });
  const ran = async (args: string[], env: NodeJS.ProcessEnv = {}) => {
    const r = await cli(['run', '--no-discover', 'pipelines/p.json', ...args], { cwd: dir, env });
    assert.equal(r.code, 0, r.err);
    return JSON.parse(readFileSync(join(/^run folder: (.+)$/m.exec(r.out)![1], 'fit', 'ran.json'), 'utf8')).settings;
  };
  try {
    assert.deepEqual(await ran([]), { max_steps: 10, learning_rate: 0.001 });
    assert.deepEqual(await ran(['--quick', '--set', 'steps.fit.settings.learning_rate=0.1']), { max_steps: 2, learning_rate: 0.1 });
    assert.deepEqual(await ran([], { PEFTKIT_QUICK: '1' }), { max_steps: 2, learning_rate: 0.5 });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('with a "plugins" list, an installed plugin that is not listed is not loaded, and the issue names it', async () => {
  const dir = project({
    'package.json': '{}',
    'pipelines/p.json': { name: 'p', plugins: [], steps: { base: { kind: 'load', settings: { model: 'openai-community/gpt2' } }, peft: { kind: 'inject', inputs: { model: 'base' }, settings: { method: 'lora' } } } },
  });
  try {
    // Discovery from the repo finds @peftkit/lora; the real built-ins give the real inject step.
    const r = await cli(['validate', join(dir, 'pipelines', 'p.json')], { builtins: undefined });
    assert.equal(r.code, 1, r.out);
    assert.match(r.err, /\/plugins: the installed package @peftkit\/lora provides "lora", but "plugins" does not list it\n {2}hint: add "@peftkit\/lora" to "plugins"/);
    writeFileSync(join(dir, 'pipelines', 'p.json'), JSON.stringify({ ...JSON.parse(readFileSync(join(dir, 'pipelines', 'p.json'), 'utf8')), plugins: ['@peftkit/lora'] }));
    const ok = await cli(['validate', join(dir, 'pipelines', 'p.json')], { builtins: undefined });
    assert.equal(ok.code, 0, ok.err);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
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
