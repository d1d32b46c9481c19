import type { ColumnTable } from 'arquero';
import type { PromptFormat, Tokenizer } from '@peftkit/models';

/** The dataset splits peftkit knows, in the order they are allocated. */
export const SPLIT_NAMES = ['train', 'validation', 'test'] as const;
/** One of {@link SPLIT_NAMES}. */
export type SplitName = (typeof SPLIT_NAMES)[number];

/**
 * What one row means (the Hugging Face / Axolotl conventions):
 * - `text`: plain text for language modelling; every token is a target.
 * - `instruction`: Alpaca-style instruction / input / output; the prompt is rendered with a
 *   template and only the response tokens (and the closing EOS) are targets.
 * - `chat`: a list of `{role, content}` messages rendered with the tokenizer's chat template; only
 *   the assistant turns are targets.
 * - `classification`: text plus a label, mapped to an id through the label list; for a causal LM
 *   the label can also be a label word appended to the prompt.
 */
export type DataShape = 'text' | 'instruction' | 'chat' | 'classification';

/** HF's ignore index: a label of -100 contributes no loss (`CrossEntropyLoss(ignore_index=-100)`). */
export const IGNORE_INDEX = -100;

/**
 * One tokenized example. `labels` follow HF's convention: aligned with `inputIds` (not shifted),
 * -100 where no loss is taken; a causal LM shifts them itself (logits at t predict labels at t + 1).
 */
export interface TokenizedExample {
  /** Token ids [T], T <= max_length. */
  inputIds: Int32Array;
  /** Targets [T]: the token id, or -100 on prompt tokens (instruction, chat, classification prompt). */
  labels: Int32Array;
  /**
   * Number of leading prompt tokens: the prefix a causal LM is given before scoring a label word or
   * generating a response. 0 for `text` examples; T for classification without label words.
   */
  promptLength: number;
  /** Class id (classification only). */
  label?: number;
  /** Row of the split's table this example came from; -1 for packed blocks (several rows). */
  row: number;
}

/** Counts for one split, as logged and written to `dataset-summary.json`. */
export interface SplitSummary {
  /** Rows read for this split (after `limit`). */
  rows: number;
  /** Examples produced (packed blocks when packing). */
  examples: number;
  /** Rows whose tokens were cut at `max_length`. */
  truncated: number;
  /** Rows dropped: empty text, or no target token left after truncation. */
  dropped: number;
  /** Tokens over all examples, padding excluded. */
  tokens: number;
  /** Tokens with a loss (label != -100). */
  targetTokens: number;
  /** Longest example, in tokens. */
  maxTokens: number;
  /** Mean example length, in tokens. */
  meanTokens: number;
  /** Packing only: tokens of the last, incomplete block, which is dropped (as HF's run_clm does). */
  packingRemainder?: number;
  /** Classification: examples per label name. */
  labelCounts?: Record<string, number>;
}

/** Summary of a built dataset. */
export interface DatasetSummary {
  shape: DataShape;
  maxLength: number;
  packing: boolean;
  labelNames?: string[];
  splits: Partial<Record<SplitName, SplitSummary>>;
}

/** Where a batch iterator stands: enough to resume it exactly (JSON-serializable). */
export interface BatchPosition {
  /** Epoch of the next batch, from 0. */
  epoch: number;
  /** Index of the next batch within its epoch, from 0. */
  batch: number;
  /** Shuffle seed: the order of epoch e is a permutation drawn from (seed, e) alone. */
  seed: number;
  /** Batch size and split size the position was taken with; a mismatch on restore is an error. */
  batchSize: number;
  examples: number;
}

/**
 * A batch as plain typed arrays, row-major, so that the train step builds its tensors
 * (`tf.tensor2d(batch.inputIds, batch.shape, 'int32')`).
 */
export interface Batch {
  /** [B, T]: B = batch size (smaller for a final partial batch), T = longest example (or max_length). */
  shape: [number, number];
  /** [B * T] token ids, right-padded with the pad id (EOS when the tokenizer has no pad token). */
  inputIds: Int32Array;
  /** [B * T] 1 for real tokens, 0 for padding. */
  attentionMask: Int32Array;
  /** [B * T] targets, -100 on masked positions and padding. */
  labels: Int32Array;
  /** [B] class ids (classification; -1 when an example has none). */
  classLabels?: Int32Array;
  /** [B] prompt lengths (see {@link TokenizedExample.promptLength}). */
  promptLengths: Int32Array;
  /** [B] indices of the examples in their split. */
  indices: Int32Array;
  /** Epoch and batch index of this batch. */
  epoch: number;
  batch: number;
}

/** Options of {@link Dataset.batches}. */
export interface BatchOptions {
  batchSize: number;
  /** Shuffle every epoch (default: true for `train`, false otherwise). */
  shuffle?: boolean;
  /** Shuffle seed (default: the dataset's seed, i.e. the pipeline seed). */
  seed?: number;
  /** Drop the last incomplete batch so every batch has `batchSize` rows (default: same as `shuffle`). */
  dropLast?: boolean;
  /** Epochs to iterate; `Infinity` cycles forever (default 1). */
  epochs?: number;
  /** `longest`: pad to the longest example of the batch (default); `max_length`: always to max_length. */
  padTo?: 'longest' | 'max_length';
  /** Resume here (from {@link BatchIterator.position} of an earlier run). */
  position?: BatchPosition;
}

/** Iterates batches of one split; see {@link Dataset.batches}. */
export interface BatchIterator extends IterableIterator<Batch> {
  /** Batches per epoch with these options. */
  readonly batchesPerEpoch: number;
  /** Position of the next batch; save it with a checkpoint, pass it back as `options.position`. */
  readonly position: BatchPosition;
}

/** One tokenized split plus the rows it came from. */
export interface TokenizedSplit {
  name: SplitName;
  /** The rows (after `limit`) as read, for steps that want the raw text (evaluate, generate). */
  table: ColumnTable;
  examples: TokenizedExample[];
  summary: SplitSummary;
}

/** What flows through a `dataset` port. */
export interface Dataset {
  shape: DataShape;
  /** Splits present: always `train`; `validation` and `test` when given. */
  splits: Partial<Record<SplitName, TokenizedSplit>>;
  /** The tokenizer the examples were made with. */
  tokenizer: Tokenizer;
  maxLength: number;
  packing: boolean;
  /** Id used for padding: the tokenizer's pad token, else its EOS. */
  padTokenId: number;
  /** Classification: label names, index = class id. */
  labelNames?: string[];
  /** Classification with label words: the token ids of each label's word (index = class id). */
  labelWordIds?: number[][];
  /** Seed of splits and default shuffles (the pipeline seed). */
  seed: number;
  summary: DatasetSummary;
  /** How rows became prompts: what an adapter trained on this data stores beside its weights. */
  promptFormat: PromptFormat;
  /**
   * Batches of one split.
   * @throws Error when the split is absent or the position does not fit this split.
   */
  batches(split: SplitName, options: BatchOptions): BatchIterator;
}
