/* Generated from packages/steps/src/load/load.schema.json by tools/typegen. Do not edit: change the schema and run `npm run typegen`. */

/**
 * Settings of the `load` step: which pretrained model to load (as transformers' `from_pretrained`), with its tokenizer. Or, with `from_config`, a freshly initialised model of a given configuration.
 */
export interface LoadSettings {
  /**
   * A local folder with config.json and model.safetensors (relative paths resolve from the pipeline file's folder), or a Hugging Face Hub id such as `openai-community/gpt2` (downloaded into ~/.cache/peftkit/hub, or $PEFTKIT_CACHE, where there is network).
   */
  model?: string;
  /**
   * Branch, tag or commit of a Hub model (transformers' `revision`); ignored for local folders.
   */
  revision?: string;
  /**
   * Compute dtype (transformers' `torch_dtype`). TensorFlow.js computes in float32, so float16 and bfloat16 weights are upcast; `auto` means the same.
   */
  dtype?: 'float32' | 'auto';
  /**
   * Which head to put on the model: `causal-lm` (`*ForCausalLM` / `GPT2LMHeadModel`) or `sequence-classification` (`*ForSequenceClassification`, head newly initialized when the checkpoint lacks it).
   */
  task?: 'causal-lm' | 'sequence-classification';
  /**
   * Number of classes of a `sequence-classification` head (config.json's `num_labels`); null: the checkpoint's config.json decides (transformers' default is 2). Ignored for `causal-lm`.
   */
  num_labels?: number | null;
  /**
   * Sets config.json's `pad_token_id`, the token decoder classifiers (GPT-2, Llama, Qwen2, Mistral) treat as padding when they pool each row's last real token. null: the checkpoint's; a `sequence-classification` model without one gets the tokenizer's pad token, else its EOS token (as transformers users set `tokenizer.pad_token = tokenizer.eos_token`), and the log says so.
   */
  pad_token_id?: number | null;
  /**
   * When true, a tensor the model needs that the checkpoint lacks, or a checkpoint tensor the model has no place for, is an error naming each. Output heads the checkpoint lacks are always newly initialized, as in transformers.
   */
  strict?: boolean;
  /**
   * Build the model from a config with fresh random weights (transformers' `AutoModel.from_config`) instead of loading a checkpoint: a path to a config.json (relative to the pipeline file) or the config object itself. How a base model is pretrained from scratch. Give either `model` or `from_config`.
   */
  from_config?:
    | string
    | {
        model_type: string;
      };
  /**
   * Folder of the tokenizer files (tokenizer.json, or vocab.json + merges.txt, or vocab.txt), relative to the pipeline file. Default: the model folder. With `from_config`, a config without `vocab_size` takes the tokenizer's.
   */
  tokenizer?: string;
}
