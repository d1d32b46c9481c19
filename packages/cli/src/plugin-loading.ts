import { dirname, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { discoverPlugins, importPlugin, type LoadedPlugin } from '@peftkit/core';

/** The package whose default export registers the built-in step kinds and the `full` method. */
export const BUILTIN_PLUGIN = '@peftkit/steps';

/**
 * Environment variable naming modules (comma-separated paths) that replace {@link BUILTIN_PLUGIN}.
 * Each module's default export is a `LoadedPlugin`, an array of them, or a function returning
 * either. Meant for tests and for embedding the CLI with other step kinds.
 */
export const BUILTINS_ENV = 'PEFTKIT_BUILTIN_PLUGINS';

const here = dirname(fileURLToPath(import.meta.url));

/** A discovered plugin package that could not be imported, and why. */
export interface FailedPlugin {
  name: string;
  error: string;
}

/** Where plugins come from for one command. */
export interface PluginLoadOptions {
  /** Replaces the built-in plugin list (in-process tests). */
  builtins?: LoadedPlugin[];
  /** Import every installed package marked `"peftkit": {"plugin": true}` (default true). */
  discover?: boolean;
  env?: NodeJS.ProcessEnv;
}

/**
 * The built-in plugins: `options.builtins` when given, else the modules named by
 * {@link BUILTINS_ENV}, else {@link BUILTIN_PLUGIN}.
 * @throws Error when a module named by the environment variable does not export a plugin.
 */
export async function loadBuiltins(options: PluginLoadOptions = {}): Promise<LoadedPlugin[]> {
  if (options.builtins) return options.builtins;
  const spec = (options.env ?? process.env)[BUILTINS_ENV];
  if (!spec) return [await importPlugin(BUILTIN_PLUGIN, here)];
  const out: LoadedPlugin[] = [];
  for (const path of spec.split(',').map((s) => s.trim()).filter(Boolean)) {
    const mod = await import(pathToFileURL(resolve(path)).href);
    let value = mod.default;
    if (typeof value === 'function') value = await value();
    const list = Array.isArray(value) ? value : [value];
    for (const p of list) {
      if (!p || typeof p.name !== 'string' || !p.module) throw new Error(`${BUILTINS_ENV}: ${path} must export (as default) a LoadedPlugin {name, version, module} or an array of them`);
      out.push(p);
    }
  }
  return out;
}

/**
 * Loads the built-ins and, unless `discover` is false, every plugin package installed in a
 * `node_modules` folder above any of `dirs` (typically the pipeline's folder and the working
 * directory) or above this CLI's own installation (plugins installed beside the CLI). Plugins that fail to import are returned in `failed` rather than thrown, so that one
 * broken package does not stop the others.
 */
export async function loadPlugins(dirs: string[], options: PluginLoadOptions = {}): Promise<{ plugins: LoadedPlugin[]; builtins: LoadedPlugin[]; failed: FailedPlugin[] }> {
  const builtins = await loadBuiltins(options);
  const plugins = [...builtins];
  const failed: FailedPlugin[] = [];
  if (options.discover === false) return { plugins, builtins, failed };
  // The real built-in package is marked as a plugin too; never load it twice.
  const seen = new Set([...plugins.map((p) => p.name), BUILTIN_PLUGIN]);
  for (const dir of [...dirs, here]) {
    for (const name of discoverPlugins(dir)) {
      if (seen.has(name)) continue;
      seen.add(name);
      try {
        plugins.push(await importPlugin(name, dir));
      } catch (e) {
        failed.push({ name, error: (e as Error).message.split('\n')[0] });
      }
    }
  }
  return { plugins, builtins, failed };
}
