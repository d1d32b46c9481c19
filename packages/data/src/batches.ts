import { deriveSeed, permutation } from './random.js';
import { IGNORE_INDEX, type Batch, type BatchIterator, type BatchOptions, type BatchPosition, type TokenizedExample } from './types.js';

/**
 * Batches over tokenized examples: a seeded shuffle per epoch (epoch e's order is a permutation
 * drawn from (seed, e) alone), a fixed batch size, right padding with `padId` and attention masks.
 *
 * Resuming: `position` after k batches, passed back as `options.position`, gives exactly the
 * batches k, k + 1, ... of the uninterrupted run.
 *
 * @param maxLength the length used with `padTo: 'max_length'`.
 * @throws Error for a batch size below 1, or a position taken with another batch size or split size.
 */
export function createBatchIterator(examples: readonly TokenizedExample[], padId: number, maxLength: number, options: BatchOptions): BatchIterator {
  const B = options.batchSize;
  if (!Number.isInteger(B) || B < 1) throw new Error(`batch size must be a positive integer, got ${B}`);
  const n = examples.length;
  const shuffle = options.shuffle ?? false;
  const dropLast = options.dropLast ?? shuffle;
  const epochs = options.epochs ?? 1;
  const padTo = options.padTo ?? 'longest';
  const perEpoch = dropLast ? Math.floor(n / B) : Math.ceil(n / B);
  let seed = (options.seed ?? 0) >>> 0;
  let epoch = 0;
  let batch = 0;
  if (options.position) {
    const p = options.position;
    if (p.batchSize !== B || p.examples !== n) {
      throw new Error(`cannot resume batches: the position was taken with batch size ${p.batchSize} over ${p.examples} examples, now ${B} over ${n}`);
    }
    ({ seed, epoch, batch } = p);
  }
  let order: number[] | null = null;
  let orderEpoch = -1;
  const orderOf = (e: number): number[] => {
    if (orderEpoch !== e) {
      order = shuffle ? permutation(n, deriveSeed(seed, `epoch:${e}`)) : Array.from({ length: n }, (_, i) => i);
      orderEpoch = e;
    }
    return order!;
  };

  const make = (e: number, b: number): Batch => {
    const idx = orderOf(e).slice(b * B, (b + 1) * B);
    const rows = idx.length;
    let T = padTo === 'max_length' ? maxLength : 0;
    if (padTo === 'longest') for (const i of idx) T = Math.max(T, examples[i].inputIds.length);
    const inputIds = new Int32Array(rows * T).fill(padId);
    const attentionMask = new Int32Array(rows * T);
    const labels = new Int32Array(rows * T).fill(IGNORE_INDEX);
    const promptLengths = new Int32Array(rows);
    const hasClass = idx.some((i) => examples[i].label !== undefined);
    const classLabels = hasClass ? new Int32Array(rows).fill(-1) : undefined;
    idx.forEach((i, r) => {
      const ex = examples[i];
      const len = Math.min(ex.inputIds.length, T);
      inputIds.set(ex.inputIds.subarray(0, len), r * T); // [B, T], right padding
      labels.set(ex.labels.subarray(0, len), r * T);
      attentionMask.fill(1, r * T, r * T + len);
      promptLengths[r] = ex.promptLength;
      if (classLabels && ex.label !== undefined) classLabels[r] = ex.label;
    });
    const out: Batch = { shape: [rows, T], inputIds, attentionMask, labels, promptLengths, indices: Int32Array.from(idx), epoch: e, batch: b };
    if (classLabels) out.classLabels = classLabels;
    return out;
  };

  const it: BatchIterator = {
    batchesPerEpoch: perEpoch,
    get position(): BatchPosition {
      return perEpoch > 0 && batch >= perEpoch ? { epoch: epoch + 1, batch: 0, seed, batchSize: B, examples: n } : { epoch, batch, seed, batchSize: B, examples: n };
    },
    next(): IteratorResult<Batch> {
      if (perEpoch === 0) return { done: true, value: undefined };
      if (batch >= perEpoch) { epoch++; batch = 0; }
      if (epoch >= epochs) return { done: true, value: undefined };
      const value = make(epoch, batch);
      batch++;
      return { done: false, value };
    },
    [Symbol.iterator]() {
      return it;
    },
  };
  return it;
}
