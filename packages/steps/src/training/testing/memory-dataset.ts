/**
 * An in-memory {@link Dataset} for the training tests: fixed token sequences, seeded per-epoch
 * shuffles and a resumable position, following the `dataset` port contract of @peftkit/data.
 */
import { mulberry32, shuffleInPlace, type Batch, type BatchIterator, type BatchOptions, type BatchPosition, type Dataset, type SplitName, type TokenizedExample, type TokenizedSplit } from '@peftkit/data';
import type { Tokenizer } from '@peftkit/models';

function order(n: number, seed: number, epoch: number, shuffle: boolean): number[] {
  const a = Array.from({ length: n }, (_, i) => i);
  return shuffle ? shuffleInPlace(a, mulberry32((seed * 31 + epoch * 7919) >>> 0)) : a;
}

/** A tokenizer over ids 0..vocab-1 that writes ids as `<n>`; enough for logging samples. */
export function idTokenizer(vocabSize: number, eos = vocabSize - 1): Tokenizer {
  return {
    vocabSize, eosTokenId: eos, padTokenId: undefined, bosTokenId: undefined,
    encode: (text) => text.split(/\s+/).filter(Boolean).map((w) => Number(w.replace(/[<>]/g, ''))),
    decode: (ids) => ids.map((i) => `<${i}>`).join(' '),
    applyChatTemplate: () => {
      throw new Error('no chat template');
    },
  };
}

/** Example from ids: every token a target (text), or only tokens from `promptLength` on. */
export function example(ids: number[], promptLength = 0, label?: number): TokenizedExample {
  const labels = Int32Array.from(ids, (t, i) => (i < promptLength ? -100 : t));
  return { inputIds: Int32Array.from(ids), labels, promptLength, label, row: -1 };
}

/** A {@link Dataset} over given examples per split. */
export function memoryDataset(splits: Partial<Record<SplitName, TokenizedExample[]>>, opts: { vocabSize: number; seed?: number; labelNames?: string[]; padTokenId?: number; labelWordIds?: number[][] }): Dataset {
  const padTokenId = opts.padTokenId ?? 0;
  const seed = opts.seed ?? 42;
  const tokenized: Dataset['splits'] = {};
  for (const [name, examples] of Object.entries(splits) as [SplitName, TokenizedExample[]][]) {
    tokenized[name] = { name, table: undefined as unknown as TokenizedSplit['table'], examples, summary: { rows: examples.length, examples: examples.length, truncated: 0, dropped: 0, tokens: 0, targetTokens: 0, maxTokens: 0, meanTokens: 0 } };
  }
  const maxLength = Math.max(...Object.values(splits).flatMap((ex) => ex!.map((e) => e.inputIds.length)));
  return {
    shape: opts.labelNames ? 'classification' : 'text',
    promptFormat: opts.labelNames ? { shape: 'classification', labels: opts.labelNames } : { shape: 'text' },
    splits: tokenized,
    tokenizer: idTokenizer(opts.vocabSize),
    maxLength,
    packing: false,
    padTokenId,
    labelNames: opts.labelNames,
    labelWordIds: opts.labelWordIds,
    seed,
    summary: { shape: opts.labelNames ? 'classification' : 'text', maxLength, packing: false, splits: {} },
    batches(split: SplitName, o: BatchOptions): BatchIterator {
      const ex = tokenized[split]?.examples;
      if (!ex) throw new Error(`no split "${split}"`);
      const shuffle = o.shuffle ?? split === 'train';
      const dropLast = o.dropLast ?? shuffle;
      const bsz = o.batchSize;
      const s = o.seed ?? seed;
      const epochs = o.epochs ?? 1;
      const perEpoch = dropLast ? Math.floor(ex.length / bsz) : Math.ceil(ex.length / bsz);
      let pos: BatchPosition = o.position ? { ...o.position } : { epoch: 0, batch: 0, seed: s, batchSize: bsz, examples: ex.length };
      if (pos.batchSize !== bsz || pos.examples !== ex.length) throw new Error('position does not fit');
      const it: BatchIterator = {
        batchesPerEpoch: perEpoch,
        get position() {
          return { ...pos };
        },
        [Symbol.iterator]() {
          return it;
        },
        next(): IteratorResult<Batch> {
          if (pos.batch >= perEpoch) pos = { ...pos, epoch: pos.epoch + 1, batch: 0 };
          if (pos.epoch >= epochs) return { done: true, value: undefined };
          const idx = order(ex.length, pos.seed, pos.epoch, shuffle).slice(pos.batch * bsz, (pos.batch + 1) * bsz);
          const T = Math.max(...idx.map((i) => ex[i].inputIds.length));
          const B = idx.length;
          const inputIds = new Int32Array(B * T).fill(padTokenId);
          const attentionMask = new Int32Array(B * T);
          const labels = new Int32Array(B * T).fill(-100);
          idx.forEach((i, b) => {
            const e = ex[i];
            inputIds.set(e.inputIds, b * T);
            labels.set(e.labels, b * T);
            attentionMask.fill(1, b * T, b * T + e.inputIds.length);
          });
          const batch: Batch = {
            shape: [B, T], inputIds, attentionMask, labels,
            classLabels: ex[0].label !== undefined ? Int32Array.from(idx, (i) => ex[i].label ?? -1) : undefined,
            promptLengths: Int32Array.from(idx, (i) => ex[i].promptLength),
            indices: Int32Array.from(idx), epoch: pos.epoch, batch: pos.batch,
          };
          pos = { ...pos, batch: pos.batch + 1 };
          return { done: false, value: batch };
        },
      };
      return it;
    },
  };
}
