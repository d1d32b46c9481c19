/* Generated from packages/steps/src/generate/generate.schema.json by tools/typegen. Do not edit: change the schema and run `npm run typegen`. */

/**
 * Settings of the `generate` step: prompts to continue with the model (and an adapter), with HF `generate`'s sampling settings. The generations are written to generations.jsonl in the step folder.
 */
export interface GenerateSettings {
  /**
   * Prompts to continue, in order. Used together with prompts_file (these first).
   */
  prompts?: string[];
  /**
   * A file of prompts, relative to the pipeline file or absolute: `.jsonl` with one JSON object per line holding `prompt` (or `text`), or any other text file with one prompt per non-empty line.
   */
  prompts_file?: string | null;
  /**
   * Give the prompts to the model as written. Default false: each prompt is wrapped in the prompt format the adapter (or the fine-tuned model) was trained with, e.g. the classification `text_template` or the instruction template, as `peftkit generate` does without `--raw`.
   */
  raw?: boolean;
  /**
   * Tokens to generate per prompt at most (HF's `max_new_tokens`); a prompt stops earlier at the end-of-sequence token.
   */
  max_new_tokens?: number;
  /**
   * Sample from the (temperature-scaled, top-k / top-p filtered) distribution; false: greedy decoding, the most likely token each step (HF's default).
   */
  do_sample?: boolean;
  /**
   * Divides the logits before sampling (HF's `temperature`): below 1 sharper, above 1 flatter. Only with do_sample.
   */
  temperature?: number;
  /**
   * Sample among the k most likely tokens only (HF's `top_k`); 0 keeps all. Only with do_sample.
   */
  top_k?: number;
  /**
   * Nucleus sampling (Holtzman et al. 2020): sample among the most likely tokens whose probabilities add up to top_p (HF's `top_p`); 1 keeps all. Only with do_sample.
   */
  top_p?: number;
  /**
   * Seed of the sampling stream; null: the pipeline's seed.
   */
  seed?: number | null;
  /**
   * Name of the adapter to generate with, when the input is a peft-model with several; `__base__` for the base model without adapters; null: the adapters active on the input.
   */
  adapter?: string | null;
  /**
   * Render each prompt as a user message with the tokenizer's chat template (with the assistant's generation prompt) before generating.
   */
  chat?: boolean;
  /**
   * Prompts generated together in one batch (left-padded).
   */
  batch_size?: number;
}
