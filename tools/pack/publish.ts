// `nx release publish` for one package (each publishable package.json names this file in its
// "nx-release-publish" target; @nx/js, which would provide that target, is not installed here).
//
//   node --import tsx tools/pack/publish.ts <package folder> [--dryRun=true] [--tag=next] [--registry=URL] [--otp=CODE]
//
// Runs `npm publish` on the folder: npm runs the package's prepack script (`tsc -b .`, which
// builds dist/) and packs exactly what `npm pack` packs. A version that the registry already has
// is skipped, so re-running a partly failed release publishes only what is missing.
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';

interface PublishArgs {
  dir: string;
  dryRun: boolean;
  tag?: string;
  registry?: string;
  otp?: string;
}

/** Parses the argument list nx's run-commands builds (`--dryRun=true`, also `--dry-run`). */
function parsePublishArgs(argv: string[]): PublishArgs {
  let dir: string | undefined;
  const flags: Record<string, string> = {};
  for (const a of argv) {
    const m = /^--([A-Za-z-]+)(?:=(.*))?$/.exec(a);
    if (m) flags[m[1].replace(/-([a-z])/g, (_, c: string) => c.toUpperCase())] = m[2] ?? 'true';
    else if (!dir) dir = a;
    else throw new Error(`publish: unexpected argument "${a}"`);
  }
  if (!dir) throw new Error('publish: give the package folder, e.g. `node --import tsx tools/pack/publish.ts plugins/lora`');
  return { dir: resolve(dir), dryRun: flags.dryRun === 'true', tag: flags.tag, registry: flags.registry, otp: flags.otp };
}

/** Whether the registry already has `name@version`; undefined when it cannot be asked (offline). */
function published(name: string, version: string, registry?: string): boolean | undefined {
  const r = spawnSync('npm', ['view', `${name}@${version}`, 'version', ...(registry ? ['--registry', registry] : [])], { encoding: 'utf8', timeout: 60_000 });
  if (r.status === 0) return r.stdout.trim() === version;
  return /E404|404 Not Found/.test(r.stderr) ? false : undefined;
}

function main(): number {
  const args = parsePublishArgs(process.argv.slice(2));
  const pkg = JSON.parse(readFileSync(join(args.dir, 'package.json'), 'utf8'));
  if (pkg.private) {
    console.log(`${pkg.name} is private; not published`);
    return 0;
  }
  const already = published(pkg.name, pkg.version, args.registry);
  if (already) {
    console.log(`${pkg.name}@${pkg.version} is already on the registry; skipped`);
    return 0;
  }
  if (already === undefined) console.log(`(could not ask the registry whether ${pkg.name}@${pkg.version} exists)`);
  const npmArgs = ['publish', args.dir, '--access', pkg.publishConfig?.access ?? 'public'];
  if (args.dryRun) npmArgs.push('--dry-run');
  if (args.tag) npmArgs.push('--tag', args.tag);
  if (args.registry) npmArgs.push('--registry', args.registry);
  if (args.otp) npmArgs.push('--otp', args.otp);
  console.log(`npm ${npmArgs.join(' ')}`);
  const r = spawnSync('npm', npmArgs, { stdio: 'inherit' });
  return r.status ?? 1;
}

process.exitCode = main();
