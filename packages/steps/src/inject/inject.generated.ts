/* Generated from packages/steps/src/inject/inject.schema.json by tools/typegen. Do not edit: change the schema and run `npm run typegen`. */

/**
 * Settings of the `inject` step: which PEFT method to inject into the model, with which config; or an existing adapter folder to load onto it (HF PEFT's `PeftModel.from_pretrained`).
 */
export interface InjectSettings {
  /**
   * Name of a registered PEFT method (`lora`, `full`, or one a plugin adds; `peftkit plugins` lists them), for a new adapter. Leave it out with `adapter`: the adapter's own config names its method.
   */
  method?: string;
  /**
   * The method's config, with HF PEFT's field names (e.g. `r`, `lora_alpha`, `target_modules` for LoRA). Validated against the chosen method's schema; its defaults are filled in. Not with `adapter` (the adapter's own adapter_config.json is used).
   */
  config?: Record<string, unknown>;
  /**
   * Name of the injected adapter (HF PEFT's `adapter_name`); an adapter not named `default` is exported into a subfolder of that name.
   */
  adapter_name?: string;
  /**
   * An existing adapter folder to load instead of injecting a new one: HF PEFT's (adapter_config.json + adapter_model.safetensors, e.g. what an `export` step wrote) or AdapterHub's for bottleneck adapters; relative paths resolve from the pipeline file's folder. Loaded with its own config (HF PEFT's `PeftModel.from_pretrained`), after checking it against the model (module names, features, widths, heads): a mismatch stops the run before anything trains.
   */
  adapter?: string;
  /**
   * With `adapter`: true to train the loaded adapter further (HF PEFT's `is_trainable=True`); false (HF's default) loads it frozen, for evaluating, merging or exporting it.
   */
  is_trainable?: boolean;
}
