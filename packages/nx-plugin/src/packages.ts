import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import type { CreateNodesResult, TargetConfiguration } from '@nx/devkit';
import type { PeftkitNxOptions } from './options';

/**
 * `test` and `build` targets for a workspace package (`packages/*` or `plugins/*`; Nx already
 * makes each an npm-workspace project from its package.json):
 * - `test` runs the package's tests with the repo's runner (`node tools/test.mjs <root>/src`);
 * - `build` runs `tsc -b` on the package when it has a tsconfig.json, after its dependencies' builds.
 */
export function packageNodes(file: string, workspaceRoot: string, options: PeftkitNxOptions = {}): CreateNodesResult {
  if (options.packageTargets === false) return {};
  const root = dirname(file);
  const targets: Record<string, TargetConfiguration> = {
    test: {
      executor: 'nx:run-commands',
      options: { command: 'node tools/test.mjs {projectRoot}/src' },
      cache: true,
      inputs: ['default', '^production', '{workspaceRoot}/tools/test.mjs'],
      metadata: { description: 'run the package tests (node:test, *.test.ts beside the code)', technologies: ['peftkit'] },
    },
  };
  if (existsSync(join(workspaceRoot, root, 'tsconfig.json'))) {
    targets.build = {
      executor: 'nx:run-commands',
      options: { command: 'tsc -b {projectRoot}' },
      cache: true,
      dependsOn: ['^build'],
      inputs: ['production', '^production', '{workspaceRoot}/tsconfig.base.json'],
      outputs: ['{projectRoot}/dist', '{projectRoot}/*.tsbuildinfo'],
      metadata: { description: 'compile src/ to dist/ (tsc -b)', technologies: ['typescript'] },
    };
  }
  return { projects: { [root]: { targets } } };
}
