import type { JSONSchema7 } from './json-schema.js';
import type { StepLogger } from './logger.js';

/**
 * The kind of PEFT method, in HF PEFT's terms: how it changes the model.
 * - `adapter-layers`: wraps or inserts modules (LoRA, bottleneck adapters, IA3).
 * - `prompt-learning`: adds virtual tokens (prompt tuning, prefix tuning).
 * - `full`: every base parameter is trained (the baseline).
 */
export type MethodFamily = 'adapter-layers' | 'prompt-learning' | 'full';

/** What a method may use while injecting itself. */
export interface MethodContext {
  logger: StepLogger;
  /** Seed for the method's initialisation. */
  seed: number;
  /** Name of the adapter being injected (the `inject` step's `adapter_name`; `default` unless set). */
  adapterName?: string;
  /** The model's tokenizer (a `Tokenizer` of @peftkit/models), when it came with one: e.g. prompt tuning's TEXT init. */
  tokenizer?: unknown;
}

/**
 * A PEFT method: how it injects itself into a model and how its adapter is saved and loaded.
 *
 * Bind one under {@link TYPES.PeftMethod} in a plugin's `ContainerModule`. The model type `M` is the
 * model class of `@peftkit/models` (the core does not depend on it); the returned `A` is the
 * method's handle on what it injected.
 *
 * @typeParam C - the method's config type, generated from `configSchema`.
 */
export interface PeftMethod<C = any, M = any, A = any> {
  /** The value of `settings.method` in an `inject` step, e.g. `lora`. */
  name: string;
  /** HF PEFT's `peft_type` written to `adapter_config.json`, e.g. `LORA`; null when not exportable to HF PEFT. */
  peftType: string | null;
  family: MethodFamily;
  description: string;
  /** JSON Schema of the method's config, with HF PEFT's field names and defaults. */
  configSchema: JSONSchema7;
  /** Checks that need more than the schema (e.g. regexes that must compile). Pointers relative to the config. */
  validateConfig?(config: C): { pointer: string; message: string; hint?: string }[];
  /**
   * Injects the method into `model` in place: freezes the base, adds trainable parameters.
   * @throws Error naming the model's candidate modules when the config matches none.
   */
  inject(model: M, config: C, ctx: MethodContext): A | Promise<A>;
  /**
   * Reads an adapter folder saved in the method's own format (not HF PEFT's; e.g. AdapterHub's for
   * bottleneck adapters), injects it into `model` and loads its weights. Methods whose adapters are
   * HF PEFT folders may also implement it to map `adapter_config.json` onto their config.
   * @throws Error (UserError for bad files) naming the file and field.
   */
  loadAdapter?(model: M, dir: string, ctx: MethodContext): A | Promise<A>;
  /** True when `adapterConfig` (the parsed `adapter_config.json` of a folder) is in this method's own format, so that a loader picks {@link PeftMethod.loadAdapter}. */
  recognizesAdapterConfig?(adapterConfig: Record<string, unknown>): boolean;
}

/**
 * A weight quantization scheme (e.g. NF4) that the `quantize` step applies to a model's linear layers.
 * Bind one under {@link TYPES.QuantScheme}.
 */
export interface QuantScheme<C = any, M = any> {
  /** The value of `settings.quant_type`, e.g. `nf4`. */
  name: string;
  description: string;
  configSchema: JSONSchema7;
  /**
   * Replaces the selected linear layers of `model` in place by quantized ones. May return what it
   * did (plain JSON: type, layers, bits per parameter), which the `quantize` step puts in
   * `LoadedModel.quantization`.
   */
  quantize(model: M, config: C, ctx: MethodContext): void | Record<string, unknown> | Promise<void | Record<string, unknown>>;
  /**
   * Replaces the layers `quantize` made by float32 ones holding their dequantized weights (the
   * 4-bit rounding is kept, not undone): the weights an adapter trained on the quantized base saw,
   * which `peftkit merge --quantize` merges it into. Absent: the scheme cannot dequantize.
   * @returns the names of the layers converted.
   */
  dequantize?(model: M): string[];
  /**
   * Writes a model this scheme quantized as a checkpoint folder in the scheme's storage format
   * (e.g. transformers + bitsandbytes': config.json with `quantization_config`). `loaded` is a
   * `LoadedModel` of `@peftkit/models`. Absent: quantized models cannot be saved.
   * @returns the file names written.
   */
  savePretrained?(loaded: unknown, folder: string): string[];
}
