/** Where the workspace and the shared HF fixtures are, and scratch folders: for tests and workspace tools. */
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * The repo root: the nearest folder above this file whose package.json is named `peftkit-workspace`.
 * @throws Error when there is none (e.g. in an installed copy of the package)
 */
export function repoRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const pkg = join(dir, 'package.json');
    if (existsSync(pkg) && JSON.parse(readFileSync(pkg, 'utf8')).name === 'peftkit-workspace') return dir;
    const up = dirname(dir);
    if (up === dir) throw new Error('repo root (package.json "peftkit-workspace") not found');
    dir = up;
  }
}

/** `../shared/fixtures/hf/<set>` relative to the repo root (see /work/shared/fixtures/hf/SOURCES.md). */
export function hfFixture(set: string): string {
  return resolve(repoRoot(), '..', 'shared', 'fixtures', 'hf', set);
}

/**
 * `../shared/fixtures/hf-golden/<name>` relative to the repo root: cases made by the real
 * transformers + peft, with their logits and gradients (see that folder's README.md).
 */
export function hfGolden(name = ''): string {
  return resolve(repoRoot(), '..', 'shared', 'fixtures', 'hf-golden', name);
}

/** A fresh temporary folder (in the OS temp folder, named `<prefix>XXXXXX`) and a function that removes it. */
export function scratch(prefix = 'peftkit-test-'): { dir: string; cleanup: () => void } {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}
