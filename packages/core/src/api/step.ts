import type { JSONSchema7 } from './json-schema.js';
import type { StepLogger } from './logger.js';
import type { InputPort, OutputPort } from './ports.js';
import type { Registry } from './registry.js';

/** Everything a running step may use besides its inputs and settings. */
export interface StepContext {
  /** The pipeline's name. */
  pipeline: string;
  /** The step's name in the pipeline. */
  step: string;
  /** Folder of the pipeline file: relative paths in settings resolve against it. */
  pipelineDir: string;
  /** This run's folder (`runs/<pipeline>/<timestamp>/`). */
  runDir: string;
  /** This step's own folder inside the run folder; created before `run` is called. */
  stepDir: string;
  /** The pipeline's seed. */
  seed: number;
  /** The TensorFlow.js backend in use (`wasm`, `tensorflow`, `cpu`, ...). */
  backend: string;
  /** When true, the step resumes from its last good checkpoint if one exists (`--resume`). */
  resume: boolean;
  /** Aborted on Ctrl-C (SIGINT) or SIGTERM: long steps checkpoint and return early. */
  signal: AbortSignal;
  logger: StepLogger;
  /** The registered methods, step kinds and quantization schemes. */
  registry: Registry;
  /** Records a metric row for this step (written to `metrics.jsonl` in the run folder). */
  recordMetrics(row: Record<string, unknown>): void;
  /**
   * Adds a line to the run's closing summary (where a report or adapter was written, headline
   * figures): what a user should see without opening files. The CLI prints it after the run.
   */
  summarize?(line: string): void;
}

/** A local path a step reads, located in its settings. */
export interface LocalPath {
  /** JSON pointer relative to the step's `settings`, e.g. `/files/train`. */
  pointer: string;
  /** The path as written: relative to the pipeline file, or absolute. */
  path: string;
  /** What must be there. */
  expect: 'file' | 'folder';
  /** The value reads as a Hugging Face Hub id (`org/name`): when nothing local has that name, the run fetches it. */
  hubId?: boolean;
}

/** Problems a step kind finds in its settings beyond what the JSON Schema can say. */
export interface SettingsIssue {
  /** JSON pointer relative to the step's `settings` object, e.g. `/config/r`. */
  pointer: string;
  message: string;
  hint?: string;
}

/** A step another depends on, as {@link StepKind.validateUpstream} sees it. */
export interface UpstreamStep {
  /** The step's name in the pipeline. */
  name: string;
  /** Its kind (`quantize`, `inject`, ...). */
  kind: string;
  settings: Record<string, unknown>;
}

/**
 * A step kind: a typed function from input ports to output ports, with a settings schema.
 *
 * Bind one under {@link TYPES.StepKind} in a plugin's `ContainerModule`. Names are unique across
 * all plugins; the engine refuses a second registration of the same name.
 *
 * @typeParam S - the settings type (generated from `settingsSchema` by json-schema-to-typescript).
 */
export interface StepKind<S = any> {
  /** The value of a step's `kind` field, e.g. `train`. */
  name: string;
  description: string;
  inputs: Record<string, InputPort>;
  outputs: Record<string, OutputPort>;
  /** JSON Schema of `settings`; defaults in it are applied before `run`. */
  settingsSchema: JSONSchema7;
  /**
   * When given, the schema actually used for validation and for `peftkit schema`, built from what
   * is registered (e.g. `inject` embeds each method's config schema under `config`).
   */
  settingsSchemaFor?(registry: Registry): JSONSchema7;
  /**
   * Cross-field checks run at validation time, after the schema passed (e.g. an unknown method
   * name). Must not touch the disk or tensors.
   */
  validate?(settings: S, registry: Registry): SettingsIssue[];
  /**
   * The local files and folders the step will read, as written in its settings (relative to the
   * pipeline file, or absolute), so that `validate` and dry runs can check they exist before
   * anything runs. Called after the schema passed; must not touch the disk.
   */
  localPaths?(settings: S): LocalPath[];
  /**
   * Checks that need the steps this one depends on, directly or not (e.g. `export` with `merged`
   * after a `quantize` step), run at validation time once the graph is known and has no cycle, so
   * that `--dry-run` catches what would otherwise fail only after training. Must not touch the disk
   * or tensors.
   * @param upstream - every step this one depends on, in run order, with its settings after defaults.
   */
  validateUpstream?(settings: S, upstream: UpstreamStep[]): SettingsIssue[];
  /**
   * Runs the step. Inputs hold the values produced by upstream steps, keyed by input port name.
   * Returns a value for every output port.
   */
  run(ctx: StepContext, inputs: Record<string, any>, settings: S): Promise<Record<string, unknown>>;
}
