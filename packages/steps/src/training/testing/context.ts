/** A step context for tests: a scratch step folder, collected log lines and metric rows. */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { ContainerModule } from 'inversify';
import { TYPES, createRegistry, type PeftMethod, type Registry, type StepContext, type StepLogger } from '@peftkit/core';
import { PeftModel, type LoadedModel } from '@peftkit/models';
import { fullMethod } from '../../methods/full.js';
import { tinyLoraMethod } from './tiny-adapter.js';

/** A logger that keeps its lines (and prints nothing). */
export function memoryLogger(lines: string[] = []): StepLogger & { lines: string[] } {
  const add = (level: string) => (m: string) => void lines.push(`${level}: ${m}`);
  return { lines, error: add('error'), warn: add('warn'), info: add('info'), debug: add('debug') };
}

export { scratch } from '@peftkit/models/testing';

/** A registry holding the `full` and test-only `tiny-lora` methods (plus any given). */
export function testRegistry(methods: PeftMethod[] = []): Registry {
  return createRegistry([{
    name: 'test', version: '0.0.0',
    module: new ContainerModule(({ bind }) => {
      for (const m of [fullMethod, tinyLoraMethod, ...methods]) bind(TYPES.PeftMethod).toConstantValue(m);
    }),
  }]);
}

/** A {@link StepContext} over `runDir/<step>`; `rows` collects recorded metrics. */
export function testContext(runDir: string, step: string, o: Partial<StepContext> = {}): StepContext & { rows: Record<string, unknown>[]; lines: string[] } {
  const stepDir = join(runDir, step);
  mkdirSync(stepDir, { recursive: true });
  const rows: Record<string, unknown>[] = [];
  const logger = memoryLogger();
  return {
    pipeline: 'test', step, pipelineDir: runDir, runDir, stepDir, seed: 42, backend: 'wasm', resume: false,
    signal: new AbortController().signal, logger, registry: testRegistry(),
    recordMetrics: (r) => void rows.push(r), rows, lines: logger.lines, ...o,
  };
}

/** Injects `method` with `config` (defaults as given) into `loaded` and wraps it in a PeftModel. */
export async function inject(loaded: LoadedModel, method: PeftMethod, config: Record<string, unknown>, seed = 42): Promise<PeftModel> {
  const handle = await method.inject(loaded.model, config, { logger: memoryLogger(), seed });
  const p = new PeftModel(loaded);
  p.addAdapter(handle);
  return p;
}
