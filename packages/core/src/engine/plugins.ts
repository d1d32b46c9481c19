import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { ContainerModule } from 'inversify';
import type { LoadedPlugin } from './registry.js';

/** The key in a plugin's package.json that marks it as a peftkit plugin: `"peftkit": {"plugin": true}`. */
export const PLUGIN_MARKER = 'peftkit';

/**
 * Imports a plugin package by name, resolved from `fromDir` as Node resolves it. The package's
 * default export must be an inversify `ContainerModule`.
 * @throws Error saying how to install the package when it cannot be resolved, or what to export
 *   when its default export is not a ContainerModule.
 */
export async function importPlugin(name: string, fromDir: string): Promise<LoadedPlugin> {
  const require = createRequire(join(resolve(fromDir), 'noop.js'));
  // `require.resolve('<name>/package.json')` fails for packages whose "exports" do not list it
  // (ERR_PACKAGE_PATH_NOT_EXPORTED), so look for the folder along Node's lookup paths instead.
  const pkgJsonPath = (require.resolve.paths(name) ?? []).map((d) => join(d, name, 'package.json')).find((p) => existsSync(p));
  if (!pkgJsonPath) {
    throw new Error(`plugin package "${name}" is not installed (looked from ${resolve(fromDir)}); install it with \`npm install ${name}\` or remove it from "plugins"`);
  }
  const pkg = JSON.parse(readFileSync(pkgJsonPath, 'utf8'));
  const mod = await import(name).catch(async (e) => {
    // Fallback for a package resolvable only from fromDir (not from this file's location). Any other
    // failure (a syntax error or a missing export inside the plugin) is reported as it is.
    if ((e as NodeJS.ErrnoException).code !== 'ERR_MODULE_NOT_FOUND' || !String((e as Error).message).includes(`'${name}'`)) throw e;
    return import(pathToFileURL(require.resolve(name)).href);
  });
  const module = mod.default ?? mod.containerModule;
  if (!(module instanceof ContainerModule) && typeof module?.load !== 'function') {
    throw new Error(`plugin package "${name}" does not export a ContainerModule as its default export`);
  }
  return { name, version: pkg.version ?? '0.0.0', module: module as ContainerModule };
}

/**
 * Finds installed plugin packages: every package under `node_modules` (walking up from `fromDir`)
 * whose package.json has `"peftkit": {"plugin": true}`.
 * @returns package names, sorted.
 */
export function discoverPlugins(fromDir: string): string[] {
  const found = new Set<string>();
  let dir = resolve(fromDir);
  for (;;) {
    const nm = join(dir, 'node_modules');
    if (existsSync(nm)) {
      for (const entry of readdirSync(nm)) {
        const names = entry.startsWith('@') ? readdirSync(join(nm, entry)).map((n) => `${entry}/${n}`) : [entry];
        for (const n of names) {
          const pj = join(nm, n, 'package.json');
          if (!existsSync(pj)) continue;
          try {
            if (JSON.parse(readFileSync(pj, 'utf8'))[PLUGIN_MARKER]?.plugin === true) found.add(n);
          } catch {
            /* a broken package.json is not ours to report */
          }
        }
      }
    }
    const up = dirname(dir);
    if (up === dir) break;
    dir = up;
  }
  return [...found].sort();
}
