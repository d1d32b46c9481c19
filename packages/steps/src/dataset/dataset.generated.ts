/* Generated from packages/steps/src/dataset/dataset.schema.json by tools/typegen. Do not edit: change the schema and run `npm run typegen`. */

/**
 * Settings of the `dataset` step: which files to read, what a row means (its shape), how to split, tokenize, truncate and pack. Give either `files` (one file per split) or `path` (one file, split by `split` fractions). Relative paths resolve against the pipeline file's folder.
 */
export interface DatasetSettings {
  /**
   * File format. `auto` tells it from the extension: .jsonl/.ndjson, .json (an array of records, or {"data": [...]}), .csv, .tsv, .arrow/.feather/.ipc (Arrow IPC).
   */
  format?: 'auto' | 'jsonl' | 'json' | 'csv' | 'tsv' | 'arrow';
  /**
   * One file per split: `train` is required, `validation` and `test` optional. No default: give this or `path`.
   */
  files?: {
    /**
     * The training file.
     */
    train: string;
    /**
     * The validation file (evaluated during training).
     */
    validation?: string;
    /**
     * The test file (held out for the final evaluation).
     */
    test?: string;
  };
  /**
   * One file split into train / validation / test by the `split` fractions, seeded by the pipeline seed. No default: give this or `files`.
   */
  path?: string;
  /**
   * With `path`: the fraction of rows per split (they must sum to 1; a split with 0 is left out). Stratified by label for classification (see `stratify`). Ignored with `files`.
   */
  split?: {
    /**
     * Fraction of rows for training.
     */
    train?: number;
    /**
     * Fraction of rows for validation.
     */
    validation?: number;
    /**
     * Fraction of rows for the test split.
     */
    test?: number;
  };
  /**
   * What a row is. `text`: plain text for language modelling (every token a target). `instruction`: Alpaca-style instruction / input / output, prompt rendered with `template`, loss on the response only. `chat`: a list of {role, content} messages rendered with the tokenizer's chat template, loss on the assistant turns only. `classification`: text + label (class ids for a classifier head; with `label_words` also a causal-LM target).
   */
  shape?: 'text' | 'instruction' | 'chat' | 'classification';
  /**
   * Column names, when the file's differ from the defaults.
   */
  columns?: {
    /**
     * Text column (`text`, `classification`).
     */
    text?: string;
    /**
     * Instruction column (`instruction`).
     */
    instruction?: string;
    /**
     * Optional input / context column (`instruction`); missing or empty: the no-input prompt is used.
     */
    input?: string;
    /**
     * Expected response column (`instruction`).
     */
    output?: string;
    /**
     * Messages column (`chat`): an array of {role, content} (ShareGPT {from, value} also read); in CSV a JSON string.
     */
    messages?: string;
    /**
     * Label column (`classification`): a label name or a class id.
     */
    label?: string;
  };
  /**
   * Classification: the label names in class-id order (HF's `id2label`). Empty: the distinct labels of the train split, sorted (numerically when all are integers).
   */
  labels?: string[];
  /**
   * Classification with a causal LM: each example's prompt is followed by its label's word and EOS, the only tokens with a loss; evaluation scores every label word after the prompt. `true`: a space then the label name (` spam`); or one word per label, encoded exactly as written. `false`: no label words (a classifier head uses the class ids).
   */
  label_words?: boolean | string[];
  /**
   * Longest example in tokens (TRL's `max_length`); longer rows are cut at the end (classification cuts the text, keeping the template and label word). With `packing`, the block length.
   */
  max_length?: number;
  /**
   * Shape `text` only: concatenate the documents, EOS after each, and cut blocks of exactly `max_length` tokens (HF run_clm's `group_texts`); the incomplete last block is dropped.
   */
  packing?: boolean;
  /**
   * Keep at most this many rows per split: a seeded subset (stratified by label for classification), for quick variants of a pipeline.
   */
  limit?: {
    /**
     * Rows kept in the train split (default: all).
     */
    train?: number;
    /**
     * Rows kept in the validation split (default: all).
     */
    validation?: number;
    /**
     * Rows kept in the test split (default: all).
     */
    test?: number;
  };
  /**
   * Shape `instruction`: the prompt template. `alpaca` (stanford_alpaca's prompt, `### Response:` followed by a newline), `plain` (instruction, newline, input, newline), or your own pair with `{instruction}` and `{input}` placeholders.
   */
  template?:
    | ('alpaca' | 'plain')
    | {
        /**
         * Prompt for rows with an input: uses `{instruction}` and `{input}`.
         */
        prompt_input: string;
        /**
         * Prompt for rows without an input: uses `{instruction}`.
         */
        prompt_no_input: string;
      };
  /**
   * Shape `classification`: the prompt around the text, with `{text}` exactly once, e.g. `Email:\n{text}\nLabel:` when using `label_words`.
   */
  text_template?: string;
  /**
   * Classification: keep each label's share in every split and in `limit` subsets.
   */
  stratify?: boolean;
}
