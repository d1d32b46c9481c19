// Removes files from a package's dist/ whose source in src/ is gone (a renamed or deleted module):
// `tsc -b` never deletes outputs, so without this they would ship in the next tarball. Run by
// each package's prepack script, before `tsc -b .`:
//
//   node --import tsx ../../tools/pack/prune-dist.ts        (in the package folder)
import { existsSync, readdirSync, rmdirSync, statSync, unlinkSync } from 'node:fs';
import { join, relative } from 'node:path';

/** The source file a dist/ file came from: `a/b.js`, `a/b.d.ts`, `a/b.js.map` ← `a/b.ts`; `x.json` ← `x.json`. */
export function sourceOf(distRelative: string): string | undefined {
  const m = /^(.*?)(\.d\.ts\.map|\.d\.ts|\.js\.map|\.js)$/.exec(distRelative);
  if (m) return `${m[1]}.ts`;
  if (distRelative.endsWith('.json')) return distRelative;
  return undefined;
}

/**
 * Deletes every file under `dir/dist` whose source under `dir/src` does not exist, then any folder
 * left empty. Files of other kinds are left alone.
 * @returns the deleted paths, relative to `dir`.
 */
export function pruneDist(dir: string): string[] {
  const dist = join(dir, 'dist');
  const removed: string[] = [];
  if (!existsSync(dist)) return removed;
  const walk = (d: string): boolean => {
    let empty = true;
    for (const name of readdirSync(d)) {
      const p = join(d, name);
      if (statSync(p).isDirectory()) {
        if (walk(p)) rmdirSync(p);
        else empty = false;
        continue;
      }
      const src = sourceOf(relative(dist, p));
      if (src !== undefined && !existsSync(join(dir, 'src', src))) {
        unlinkSync(p);
        removed.push(relative(dir, p));
      } else empty = false;
    }
    return empty;
  };
  walk(dist);
  return removed;
}

if (process.argv[1] && /prune-dist\.ts$/.test(process.argv[1])) {
  for (const f of pruneDist(process.cwd())) console.error(`prune-dist: removed ${f} (its source is gone)`);
}
