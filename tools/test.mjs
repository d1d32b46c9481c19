// Runs every *.test.ts under packages/, plugins/ and tools/ with Node's test runner.
// Node 20's `--test` takes no globs, so the file list is built here.
import { spawnSync } from 'node:child_process';
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';

const roots = process.argv.slice(2).length ? process.argv.slice(2) : ['packages', 'plugins', 'tools'];
const files = [];
function walk(dir) {
  for (const name of readdirSync(dir)) {
    if (name === 'node_modules' || name === 'dist' || name === 'files') continue;
    const p = join(dir, name);
    if (statSync(p).isDirectory()) walk(p);
    else if (name.endsWith('.test.ts')) files.push(p);
  }
}
for (const r of roots) statSync(r, { throwIfNoEntry: false })?.isDirectory() ? walk(r) : files.push(r);
files.sort();
const res = spawnSync(
  process.execPath,
  ['--conditions=peftkit-source', '--import', 'tsx', '--test', '--test-reporter=spec', ...files],
  // One WASM thread unless asked: the runner's own processes keep the cores busy, and the tests that
  // need threads start them explicitly.
  { stdio: 'inherit', env: { ...process.env, PEFTKIT_LOG_LEVEL: process.env.PEFTKIT_LOG_LEVEL ?? 'warn', PEFTKIT_WASM_THREADS: process.env.PEFTKIT_WASM_THREADS ?? '1' } },
);
process.exit(res.status ?? 1);
