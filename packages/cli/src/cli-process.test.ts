// The command line as a user runs it: a child process, real exit codes, output and signals.
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const root = join(here, '..', '..', '..');
const bin = join(here, '..', 'bin', 'peftkit.js');
const env = { ...process.env, PEFTKIT_BUILTIN_PLUGINS: 'packages/cli/test-fixtures/test-plugin.ts', PEFTKIT_LOG_LEVEL: 'warn', NO_COLOR: '1' };

test('bin/peftkit.js runs from source: exit codes and messages of validate', () => {
  const ok = spawnSync(process.execPath, [bin, 'validate', '--no-discover', 'packages/cli/test-fixtures/valid.json'], { cwd: root, env, encoding: 'utf8' });
  assert.equal(ok.status, 0, ok.stderr);
  assert.equal(ok.stdout, 'ok packages/cli/test-fixtures/valid.json\n');
  const bad = spawnSync(process.execPath, [bin, 'validate', '--no-discover', 'packages/cli/test-fixtures/port-mismatch.json'], { cwd: root, env, encoding: 'utf8' });
  assert.equal(bad.status, 1);
  assert.equal(bad.stdout, '');
  assert.match(bad.stderr, /^packages\/cli\/test-fixtures\/port-mismatch\.json: \/steps\/q\/inputs\/model: port type mismatch: .*\n {2}hint: quantize the base model before injecting a method.*\n$/);
});

test('the npm script form (node --conditions=peftkit-source --import tsx src/main.ts) prints help', () => {
  const r = spawnSync(process.execPath, ['--conditions=peftkit-source', '--import', 'tsx', 'packages/cli/src/main.ts', 'validate', '--help'], { cwd: root, env, encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /^Usage: peftkit validate \[options\] <pipeline\.\.\.>/);
});

/** Starts `peftkit run <fixture>` and resolves once its step says it is waiting. */
function startWaiting(fixture: string, runs: string) {
  const child = spawn(process.execPath, [bin, 'run', '--no-discover', `packages/cli/test-fixtures/${fixture}`, '--runs-dir', runs], { cwd: root, env });
  let out = '';
  let err = '';
  child.stdout.on('data', (d) => (out += d));
  child.stderr.on('data', (d) => (err += d));
  const exited = new Promise<{ code: number | null; out: string; err: string }>((res) => child.on('close', (code) => res({ code, out, err })));
  const waiting = new Promise<void>((res, rej) => {
    const check = () => (/waiting for an abort/.test(out + err) ? res() : undefined);
    child.stdout.on('data', check);
    child.stderr.on('data', check);
    child.on('close', () => rej(new Error(`exited before waiting: ${out}${err}`)));
  });
  return { child, waiting, exited };
}

test('Ctrl-C: the first SIGINT aborts the run, the step checkpoints, exit code 130', async () => {
  const runs = mkdtempSync(join(tmpdir(), 'peftkit-cli-'));
  try {
    const { child, waiting, exited } = startWaiting('wait.json', runs);
    await waiting;
    child.kill('SIGINT');
    const r = await exited;
    assert.equal(r.code, 130, r.err);
    const runDir = /^run folder: (.+)$/m.exec(r.out)![1];
    assert.equal(JSON.parse(readFileSync(join(runDir, 'status.json'), 'utf8')).state, 'interrupted');
    assert.deepEqual(JSON.parse(readFileSync(join(runDir, 'hold', 'checkpoint.json'), 'utf8')), { aborted: true });
    assert.match(r.err, /SIGINT: stopping/);
  } finally {
    rmSync(runs, { recursive: true, force: true });
  }
});

test('Ctrl-C twice exits at once even when the step ignores the abort', async () => {
  const runs = mkdtempSync(join(tmpdir(), 'peftkit-cli-'));
  try {
    const { child, waiting, exited } = startWaiting('wait-ignoring-abort.json', runs);
    await waiting;
    child.kill('SIGINT');
    await new Promise((r) => setTimeout(r, 200));
    child.kill('SIGTERM');
    const r = await exited;
    assert.equal(r.code, 130, r.err);
    assert.match(r.err, /SIGTERM: exiting now/);
    // The step never finished: the run is left as it was (resumable).
    const status = JSON.parse(readFileSync(join(runs, 'wait-ignoring-abort', 'latest', 'status.json'), 'utf8'));
    assert.deepEqual([status.state, status.step], ['running', 'hold']);
  } finally {
    rmSync(runs, { recursive: true, force: true });
  }
});

test('generate reads a piped prompt and streams to stdout; inspect exits 1 for an adapter that does not fit', async () => {
  const { runCli } = await import('./cli.js');
  const args = ['generate', '--model', '../shared/fixtures/hf/ckpt-gpt2-tiny-vocab', '--backend', 'wasm', '-n', '5', '--ignore-eos'];
  const piped = spawnSync(process.execPath, [bin, ...args], { cwd: root, env, encoding: 'utf8', input: ' lower\n' });
  assert.equal(piped.status, 0, piped.stderr);
  // The same generation in-process, with the prompt as an argument.
  let out = '';
  assert.equal(await runCli([...args, ' lower'], { cwd: root, out: (s) => void (out += s), err: () => {} }), 0);
  assert.ok(out.length > 1);
  assert.equal(piped.stdout, out);
  assert.match(piped.stderr, /^backend: wasm /m);
  assert.match(piped.stderr, /^5 tokens in .* stopped at --max-new-tokens 5$/m);

  const inspect = spawnSync(process.execPath, [bin, 'inspect', '../shared/fixtures/hf/gpt2-lora-tigrinya', '--base', '../shared/fixtures/hf/ckpt-gpt2-fake-nembd2'], { cwd: root, env, encoding: 'utf8' });
  assert.equal(inspect.status, 1, inspect.stderr);
  assert.match(inspect.stdout, /compatibility with \.\.\/shared\/fixtures\/hf\/ckpt-gpt2-fake-nembd2: 39 mismatches in 36 checked/);
});
