/** Where the shared HF fixtures are (`../shared/fixtures/hf/<set>` beside the repo root). */
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The folder whose package.json is named `peftkit-workspace`, above this file. */
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

/** `../shared/fixtures/hf/<set>` relative to the repo root. */
export function hfFixture(set: string): string {
  return resolve(repoRoot(), '..', 'shared', 'fixtures', 'hf', set);
}
