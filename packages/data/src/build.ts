import { resolve } from 'node:path';
import * as aq from 'arquero';
import type { ColumnTable } from 'arquero';
import { UserError } from '@peftkit/core';
import type { PromptFormat, Tokenizer } from '@peftkit/models';
import { createBatchIterator } from './batches.js';
import { readTable, type FileFormat } from './formats.js';
import { deriveSeed } from './random.js';
import { DEFAULT_COLUMNS, readRows, type ColumnNames, type ShapeRow } from './shapes.js';
import { sampleIndices, splitIndices, type SplitFractions } from './split.js';
import { resolveInstructionTemplate, splitTextTemplate, type InstructionTemplate } from './templates.js';
import { labelList, padIdOf, tokenizeRows } from './tokenize.js';
import { SPLIT_NAMES, type DataShape, type Dataset, type DatasetSummary, type SplitName, type TokenizedSplit } from './types.js';

/**
 * Options of {@link buildDataset}: the `dataset` step's settings with paths resolved, plus the
 * tokenizer and the seed.
 */
export interface BuildDatasetOptions {
  tokenizer: Tokenizer;
  /** Seed of the split, the `limit` subsets and the default shuffles (the pipeline seed). */
  seed: number;
  shape: DataShape;
  /** Longest example in tokens; with packing, the block length. */
  maxLength: number;
  /** Folder that relative paths resolve against (the pipeline file's folder). */
  baseDir?: string;
  /** File format; `auto` (default) from the extension. */
  format?: FileFormat | 'auto';
  /** One file per split (`train` required). Give this or `path`. */
  files?: { train: string; validation?: string; test?: string };
  /** One file, split by `split` fractions. */
  path?: string;
  /** Fractions for `path` (default train 0.8, validation 0.1, test 0.1). */
  split?: SplitFractions;
  columns?: Partial<ColumnNames>;
  /** Classification: label names in class-id order; empty: the sorted labels of the train split. */
  labels?: string[];
  /** Classification as a causal LM: `true` for `' ' + label name`, or one word per label. */
  labelWords?: boolean | string[];
  /** `text` only: pack documents into blocks of `maxLength`. */
  packing?: boolean;
  /** Rows kept per split: a seeded (stratified for classification) subset. */
  limit?: Partial<Record<SplitName, number>>;
  template?: 'alpaca' | 'plain' | InstructionTemplate;
  /** Classification prompt with one `{text}` (default `{text}`). */
  textTemplate?: string;
  /** Stratify the split and the subsets by label (classification; default true). */
  stratify?: boolean;
  /**
   * The id batches are padded with: the model's `pad_token_id`, so that a decoder classifier pools
   * at the right token. Default: the tokenizer's pad token, else its EOS token.
   */
  padTokenId?: number;
}

interface RawSplit {
  table: ColumnTable;
  rows: ShapeRow[];
  locate: (r: number) => string;
}

/** Rows `indices` of `table`, as a new table with the same columns. */
export function takeRows(table: ColumnTable, indices: readonly number[]): ColumnTable {
  const cols: Record<string, unknown[]> = {};
  for (const name of table.columnNames()) {
    const col = table.array(name);
    cols[name] = indices.map((i) => col[i]);
  }
  return aq.table(cols);
}

function subset(s: RawSplit, idx: number[]): RawSplit {
  return { table: takeRows(s.table, idx), rows: idx.map((i) => s.rows[i]), locate: (r) => s.locate(idx[r]) };
}

function strataOf(rows: ShapeRow[], on: boolean): string[] | undefined {
  return on ? rows.map((r) => (r.shape === 'classification' ? String(r.label) : '')) : undefined;
}

/**
 * Reads, splits, subsets and tokenizes a fine-tuning dataset.
 *
 * @returns the {@link Dataset} that flows through a `dataset` port.
 * @throws UserError naming the file, the row and the setting (pointer relative to the step's
 *   settings, e.g. `/files/train`, `/columns/text`, `/labels`) for any bad input.
 */
export function buildDataset(o: BuildDatasetOptions): Dataset {
  const base = o.baseDir ?? process.cwd();
  const format = o.format ?? 'auto';
  const columns: ColumnNames = { ...DEFAULT_COLUMNS, ...o.columns };
  const classification = o.shape === 'classification';
  const stratify = classification && (o.stratify ?? true);
  const packing = !!o.packing;
  if (!Number.isInteger(o.maxLength) || o.maxLength < 1) throw new UserError(`max_length must be a positive integer, got ${o.maxLength}`, { pointer: '/max_length' });
  if (packing && o.shape !== 'text') throw new UserError(`packing applies to the "text" shape only, not "${o.shape}"`, { pointer: '/packing', hint: 'set "packing": false' });
  if (!!o.files === !!o.path) {
    throw new UserError(o.files ? 'give either "files" or "path", not both' : 'no data: give "files" ({"train": ..., "validation": ..., "test": ...}) or "path" with "split" fractions', {
      pointer: o.files ? '/path' : '/files',
    });
  }
  let textTemplate = o.textTemplate ?? '{text}';
  if (classification) {
    try {
      splitTextTemplate(textTemplate);
    } catch (e) {
      throw new UserError((e as Error).message, { pointer: '/text_template', hint: 'e.g. "Email:\\n{text}\\nLabel:"' });
    }
  }

  const raw: Partial<Record<SplitName, RawSplit>> = {};
  if (o.files) {
    for (const s of SPLIT_NAMES) {
      const f = o.files[s];
      if (!f) continue;
      const loaded = readTable(resolve(base, f), format, `/files/${s}`);
      raw[s] = { table: loaded.table, rows: readRows(loaded, o.shape, columns), locate: (r) => `${loaded.file}: ${loaded.locate(r)}` };
    }
  } else {
    const loaded = readTable(resolve(base, o.path!), format, '/path');
    const all: RawSplit = { table: loaded.table, rows: readRows(loaded, o.shape, columns), locate: (r) => `${loaded.file}: ${loaded.locate(r)}` };
    let parts: Record<SplitName, number[]>;
    try {
      parts = splitIndices(all.rows.length, o.split ?? { train: 0.8, validation: 0.1, test: 0.1 }, o.seed, strataOf(all.rows, stratify));
    } catch (e) {
      throw new UserError((e as Error).message, { pointer: '/split' });
    }
    for (const s of SPLIT_NAMES) if (s === 'train' || parts[s].length) raw[s] = subset(all, parts[s]);
  }
  for (const s of SPLIT_NAMES) {
    const k = o.limit?.[s];
    const r = raw[s];
    if (k !== undefined && r && k < r.rows.length) raw[s] = subset(r, sampleIndices(r.rows.length, k, deriveSeed(o.seed, `limit:${s}`), strataOf(r.rows, stratify)));
  }

  let labelNames: string[] | undefined;
  let labelWords: string[] | undefined;
  if (classification) {
    labelNames = labelList(o.labels, raw.train!.rows);
    if (labelNames.length < 2) throw new UserError(`classification needs at least 2 labels, found [${labelNames.join(', ')}]`, { pointer: '/labels' });
    if (o.labelWords === true) labelWords = labelNames.map((n) => ' ' + n);
    else if (Array.isArray(o.labelWords) && o.labelWords.length) {
      if (o.labelWords.length !== labelNames.length) {
        throw new UserError(`label_words has ${o.labelWords.length} words for ${labelNames.length} labels [${labelNames.join(', ')}]`, { pointer: '/label_words', hint: 'give one word per label, in label order' });
      }
      labelWords = [...o.labelWords];
    }
  }

  const template = resolveInstructionTemplate(o.template);
  const splits: Partial<Record<SplitName, TokenizedSplit>> = {};
  for (const s of SPLIT_NAMES) {
    const r = raw[s];
    if (!r) continue;
    const { examples, summary } = tokenizeRows(r.rows, {
      shape: o.shape, tokenizer: o.tokenizer, maxLength: o.maxLength, packing, template, textTemplate, labelNames, labelWords,
      locate: r.locate,
    });
    splits[s] = { name: s, table: r.table, examples, summary };
  }
  if (!splits.train!.examples.length) {
    throw new UserError(`the train split has no examples (${splits.train!.summary.rows} rows, ${splits.train!.summary.dropped} dropped)`, {
      pointer: o.files ? '/files/train' : '/path', hint: 'check the file, the shape and the column names',
    });
  }
  const padTokenId = o.padTokenId ?? padIdOf(o.tokenizer);
  const summary: DatasetSummary = {
    shape: o.shape, maxLength: o.maxLength, packing,
    ...(labelNames ? { labelNames } : {}),
    splits: Object.fromEntries(Object.entries(splits).map(([k, v]) => [k, v.summary])),
  };
  const promptFormat: PromptFormat = {
    shape: o.shape,
    ...(classification ? { text_template: textTemplate } : {}),
    ...(o.shape === 'instruction' ? { instruction_template: template.prompt_no_input } : {}),
    ...(labelNames ? { labels: labelNames } : {}),
    ...(labelWords ? { label_words: labelWords } : {}),
  };
  const dataset: Dataset = {
    shape: o.shape, splits, tokenizer: o.tokenizer, maxLength: o.maxLength, packing, padTokenId, seed: o.seed, summary, promptFormat,
    batches(split, options) {
      const sp = splits[split];
      if (!sp) throw new Error(`the dataset has no "${split}" split (it has ${Object.keys(splits).join(', ')})`);
      const shuffle = options.shuffle ?? split === 'train';
      return createBatchIterator(sp.examples, padTokenId, o.maxLength, { ...options, shuffle, seed: options.seed ?? o.seed });
    },
  };
  if (labelNames) dataset.labelNames = labelNames;
  if (labelWords) dataset.labelWordIds = labelWords.map((w) => o.tokenizer.encode(w, { addSpecialTokens: false }));
  return dataset;
}

/** One line per split for the log: rows, examples, tokens, truncated and dropped rows, labels. */
export function formatSummary(s: DatasetSummary): string[] {
  return Object.entries(s.splits).map(([name, x]) => {
    const parts = [`${name}: ${plural(x.rows, 'row')} -> ${s.packing ? `${plural(x.examples, 'block')} of ${s.maxLength}` : plural(x.examples, 'example')}`, `${x.tokens} tokens (${x.targetTokens} with loss, mean ${x.meanTokens.toFixed(1)}, max ${x.maxTokens})`];
    if (x.truncated) parts.push(`${x.truncated} truncated at ${s.maxLength}`);
    if (x.dropped) parts.push(`${x.dropped} dropped`);
    if (x.packingRemainder) parts.push(`${x.packingRemainder} tokens left over after the last block`);
    if (x.labelCounts) parts.push(`labels ${Object.entries(x.labelCounts).map(([k, v]) => `${k}=${v}`).join(' ')}`);
    return parts.join(', ');
  });
}

/** `1 row`, `2 rows`. */
const plural = (n: number, word: string) => `${n} ${word}${n === 1 ? '' : 's'}`;
