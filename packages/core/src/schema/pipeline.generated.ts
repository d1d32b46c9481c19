/* Generated from packages/core/src/schema/pipeline.schema.json by tools/typegen. Do not edit: change the schema and run `npm run typegen`. */

/**
 * A peftkit pipeline: a named graph of typed steps (load, quantize, inject, train, evaluate, export, dataset, ...). Each step names its kind, its settings and the outputs of other steps it consumes.
 */
export interface Pipeline {
  /**
   * Path or URL of the composed schema (`peftkit schema > pipeline.schema.json`), for editor validation.
   */
  $schema?: string;
  /**
   * The pipeline's name; also its Nx target name and its run folder name.
   */
  name: string;
  description?: string;
  /**
   * Seed of every random draw of the run (initialisation, dropout, shuffling, splits).
   */
  seed?: number;
  /**
   * TensorFlow.js backend. `auto` tries @tensorflow/tfjs-node-gpu, then WebGPU on a real GPU (@tensorflow/tfjs-backend-webgpu on Dawn, optional dependencies), then @tensorflow/tfjs-node (optional peers), then WASM, then the plain CPU backend. `webgpu` explicitly also runs on a software adapter (Mesa llvmpipe through Dawn's OpenGL ES backend) when there is no GPU.
   */
  backend?: 'auto' | 'tensorflow-gpu' | 'webgpu' | 'tensorflow' | 'wasm' | 'cpu';
  /**
   * Plugin packages to load by package name (e.g. `@peftkit/lora`); each exports a `ContainerModule`.
   */
  plugins?: string[];
  /**
   * Names of other pipelines whose outputs this one reads; Nx runs them first.
   */
  dependsOn?: string[];
  /**
   * Folders (relative to the pipeline file) that this pipeline writes and others may read, for Nx's dependency tracking.
   */
  outputs?: string[];
  /**
   * Smaller sizes for a quick run (CI, a first try): dotted paths, as `--set` takes them, to values, e.g. {"steps.train.settings.max_steps": 2}. Applied by `peftkit run --quick` or when the environment variable PEFTKIT_QUICK is 1, before any `--set`; `description` says what the quick run still shows.
   */
  quick?: {
    [k: string]: unknown;
  };
  /**
   * The steps, by name. Run in dependency order, not in the order written.
   */
  steps: {
    [k: string]: Step;
  };
}
export interface Step {
  /**
   * The step kind: load, dataset, quantize, inject, train, evaluate, export, or one a plugin adds.
   */
  kind: string;
  description?: string;
  /**
   * Input port name to `step` or `step.port`: which output of which step this input consumes.
   */
  inputs?: {
    [k: string]: string;
  };
  /**
   * The step kind's settings; their schema comes from the step kind (and, for `inject`, from the method's plugin).
   */
  settings?: {
    [k: string]: unknown;
  };
}
