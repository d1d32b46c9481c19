/**
 * @peftkit/nx-plugin: turns every `pipelines/*.json` into a target of the `pipelines` project
 * (`nx run pipelines:<name>`, `nx run pipelines:<name>:dry-run`), adds `test` and `build` targets
 * to the workspace packages, and provides the `method` generator (`nx g @peftkit/nx-plugin:method <name>`).
 */
import { createNodesFromFiles, type CreateNodes } from '@nx/devkit';
import type { PeftkitNxOptions } from './options';
import { packageNodes } from './packages';
import { pipelineNodes } from './pipelines';

/** Files the plugin reads: pipeline files, and the workspace packages' package.json. */
export const PEFTKIT_FILES = '{pipelines/*.json,packages/*/package.json,plugins/*/package.json}';

/** Nx's `createNodes` (the v2 signature: all matching files at once). */
export const createNodes: CreateNodes<PeftkitNxOptions> = [
  PEFTKIT_FILES,
  (files, options, context) =>
    createNodesFromFiles(
      (file, opts) => (file.endsWith('/package.json') ? packageNodes(file, context.workspaceRoot, opts ?? {}) : pipelineNodes(file, context.workspaceRoot, opts ?? {})),
      files,
      options ?? {},
      context,
    ),
];

/** The same, under the name Nx 19 to 22 look for. */
export const createNodesV2 = createNodes;

export type { PeftkitNxOptions } from './options';
export { pipelineTarget, localFileInputs, DRY_RUN, RUN } from './pipelines';
export { packageNodes } from './packages';
