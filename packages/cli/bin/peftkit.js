#!/usr/bin/env node
// The `peftkit` executable. In the workspace (src/ present, tsx installed) it runs the TypeScript
// sources in this process: tsx compiles them and a resolve hook adds the `peftkit-source` export
// condition, so that @peftkit/* packages resolve to their src/ as they do under `npm run peftkit`.
// Installed from a packed tarball (no src/*.ts), it runs the compiled dist/.
import { existsSync } from 'node:fs';
import { register } from 'node:module';
import { fileURLToPath } from 'node:url';

const source = new URL('../src/main.ts', import.meta.url);

function tsxApi() {
  try {
    return import.meta.resolve('tsx/esm/api');
  } catch {
    return undefined;
  }
}

const api = existsSync(fileURLToPath(source)) ? tsxApi() : undefined;
if (api) {
  (await import(api)).register();
  // Registered after tsx, so it runs first: it adds the condition, then hands over to tsx's resolver.
  const hook = `export function resolve(specifier, context, next) {
    const conditions = context.conditions.includes('peftkit-source') ? context.conditions : [...context.conditions, 'peftkit-source'];
    return next(specifier, { ...context, conditions });
  }`;
  register(`data:text/javascript,${encodeURIComponent(hook)}`);
  await import(source.href);
} else {
  await import(new URL('../dist/main.js', import.meta.url).href);
}
