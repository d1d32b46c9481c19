/* Generated from packages/steps/src/inject/inject.schema.json by tools/typegen. Do not edit: change the schema and run `npm run typegen`. */

/**
 * Settings of the `inject` step: which PEFT method to inject into the model, with which config.
 */
export interface InjectSettings {
  /**
   * Name of a registered PEFT method (`lora`, `full`, or one a plugin adds; `peftkit plugins` lists them).
   */
  method: string;
  /**
   * The method's config, with HF PEFT's field names (e.g. `r`, `lora_alpha`, `target_modules` for LoRA). Validated against the chosen method's schema; its defaults are filled in.
   */
  config?: Record<string, unknown>;
  /**
   * Name of the injected adapter (HF PEFT's `adapter_name`); an adapter not named `default` is exported into a subfolder of that name.
   */
  adapter_name?: string;
}
