/**
 * @peftkit/core: the pipeline engine and the public plugin API.
 *
 * Plugin authors need only the `api` exports: {@link TYPES}, {@link StepKind}, {@link PeftMethod},
 * {@link QuantScheme} and the port types.
 */
export * from './api/ports.js';
export * from './api/step.js';
export * from './api/method.js';
export * from './api/registry.js';
export * from './api/types.js';
export * from './api/logger.js';
export type { JSONSchema7 } from './api/json-schema.js';
export type { Pipeline, Step } from './schema/pipeline.generated.js';
export * from './engine/errors.js';
export * from './engine/did-you-mean.js';
export { createRegistry, type LoadedPlugin } from './engine/registry.js';
export { importPlugin, discoverPlugins } from './engine/plugins.js';
export { readPipelineFile, applyOverrides, applyQuick } from './engine/pipeline.js';
export { checkLocalPaths, dependencyOutputs, type DependencyOutput, type LocalPathCheck } from './engine/local-paths.js';
export { validatePipeline, parseRef, type ValidatedPipeline, type Edge } from './engine/validate.js';
export { schemaIssues, validatorFor } from './engine/schema-check.js';
export { composeSchema } from './engine/compose-schema.js';
export { preparePipeline, runPipeline, type PreparedPipeline, type RunOptions, type RunResult, type PluginSources, type PrepareOptions } from './engine/run.js';
export * from './runtime/atomic.js';
export * from './runtime/backend.js';
export { claimWasmThreads, requestedWasmThreads, WASM_THREADS_ENV, type WasmStart } from './runtime/wasm-threads.js';
export { guardWasmHeap, isWasmHeapError, wasmHeapBytes, WasmHeapExhausted, WASM_HEAP_MAX_BYTES } from './runtime/wasm-heap.js';
export { createLogger } from './runtime/logger.js';
