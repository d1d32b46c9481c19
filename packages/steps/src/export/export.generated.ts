/* Generated from packages/steps/src/export/export.schema.json by tools/typegen. Do not edit: change the schema and run `npm run typegen`. */

/**
 * Settings of the `export` step: where and how to write the trained adapter.
 */
export interface ExportSettings {
  /**
   * Folder to write the adapter into, relative to the pipeline file or absolute; null: `adapter` in the step's run folder. Replaced as a whole (atomically) when it exists. An adapter not named `default` goes into a subfolder named after it, as HF PEFT does.
   */
  path?: string | null;
  /**
   * `hf-peft`: adapter_config.json + adapter_model.safetensors, loadable with PEFT's `PeftModel.from_pretrained`. Methods with their own format (AdapterHub bottleneck adapters) write that instead; `full` writes a whole HF checkpoint (config.json, model.safetensors, tokenizer).
   */
  format?: 'hf-peft';
  /**
   * Also write the base model with the adapter merged into its weights (HF PEFT's `merge_and_unload` then `save_pretrained`), loadable with transformers alone. Needs a method that can merge (LoRA) and a full-precision base.
   */
  merged?: boolean;
  /**
   * Folder of the merged model, relative to the pipeline file or absolute; null: the adapter folder's path with `-merged` appended.
   */
  merged_path?: string | null;
}
