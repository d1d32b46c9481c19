/* Generated from packages/steps/src/evaluate/evaluate.schema.json by tools/typegen. Do not edit: change the schema and run `npm run typegen`. */

/**
 * Settings of the `evaluate` step: which split to score, how, and what to compare with.
 */
export interface EvaluateSettings {
  /**
   * The dataset split to evaluate on.
   */
  split?: 'train' | 'validation' | 'test';
  /**
   * Examples per forward pass (HF's per_device_eval_batch_size).
   */
  batch_size?: number;
  /**
   * causal-lm: loss and perplexity of the labelled tokens (and, on a classification dataset with label words, accuracy by label-word likelihood); sequence-classification: loss and accuracy/precision/recall/F1 of the classification head. auto: from the model's head.
   */
  task?: 'auto' | 'causal-lm' | 'sequence-classification';
  /**
   * Classification with a causal LM: one word per label (in label order) whose likelihood after the prompt is scored; the highest wins. Tokenized without special tokens, so include a leading space where the prompt expects one (" positive"). null: the dataset's own label words, if it has them.
   */
  label_words?: string[] | null;
  /**
   * Binary classification: the positive class, by name or id, for precision/recall/F1. null: class 1.
   */
  positive_label?: string | number | null;
  /**
   * Also score the model with its adapters disabled (the base model) and the majority-class baseline, so the report shows what fine-tuning changed.
   */
  baselines?: boolean;
  /**
   * Split of the `reference` dataset (held-out text of the base model's own domain) whose perplexity measures forgetting. null: test, else validation, else train.
   */
  reference_split?: 'train' | 'validation' | 'test' | null;
  /**
   * Generate continuations for this many prompts of the split (causal LMs only), with and without the adapter, for the report.
   */
  num_samples?: number;
  /**
   * Tokens generated per sample at most (greedy).
   */
  max_new_tokens?: number;
}
