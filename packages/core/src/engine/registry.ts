import 'reflect-metadata';
import { Container, type ContainerModule } from 'inversify';
import type { PeftMethod, QuantScheme } from '../api/method.js';
import type { Registry } from '../api/registry.js';
import type { StepKind } from '../api/step.js';
import { TYPES } from '../api/types.js';

/** A plugin as the engine sees it: its package name and version, and its container module. */
export interface LoadedPlugin {
  name: string;
  version: string;
  module: ContainerModule;
}

/**
 * Loads the plugins' container modules into one inversify container and collects their
 * contributions.
 * @throws Error when two plugins register the same step kind, method or quantization scheme name.
 */
export function createRegistry(plugins: LoadedPlugin[]): Registry {
  const container = new Container();
  const owner = new Map<string, string>();
  const byKind = { StepKind: new Map<string, StepKind>(), PeftMethod: new Map<string, PeftMethod>(), QuantScheme: new Map<string, QuantScheme>() };
  for (const plugin of plugins) {
    // Load each module into its own child container so that we know who contributed what.
    const child = new Container({ parent: container });
    child.load(plugin.module);
    for (const key of Object.keys(byKind) as (keyof typeof byKind)[]) {
      const id = TYPES[key];
      if (!child.isBound(id)) continue;
      for (const item of child.getAll<{ name: string }>(id)) {
        const tag = `${key}:${item.name}`;
        const prev = owner.get(tag);
        if (prev) throw new Error(`${key} "${item.name}" is registered twice: by ${prev} and by ${plugin.name}. Remove one of the two plugins.`);
        owner.set(tag, plugin.name);
        (byKind[key] as Map<string, unknown>).set(item.name, item);
      }
    }
  }
  const sorted = <T>(m: Map<string, T>) => [...m.keys()].sort().map((k) => m.get(k)!);
  return {
    stepKinds: () => sorted(byKind.StepKind),
    methods: () => sorted(byKind.PeftMethod),
    quantSchemes: () => sorted(byKind.QuantScheme),
    stepKind: (n) => byKind.StepKind.get(n),
    method: (n) => byKind.PeftMethod.get(n),
    quantScheme: (n) => byKind.QuantScheme.get(n),
    plugins: () => plugins.map(({ name, version }) => ({ name, version })),
  };
}
