/**
 * Mixed-adapter batches: one forward pass in which each row of the batch uses its own adapter, as
 * HF PEFT's `adapter_names` argument (`PeftModel.forward(..., adapter_names=[...])`, LoRA's
 * `_mixed_batch_forward` in `peft/tuners/lora/layer.py` and `ModulesToSaveWrapper._mixed_batch_forward`
 * in `peft/utils/other.py`).
 *
 * HF passes the names to every LoRA layer with forward pre-hooks. Here {@link PeftModel.forward}
 * sets them for the duration of the (synchronous) forward pass with {@link withMixedBatch}, and the
 * layers that support per-row adapters ({@link MixedBatchModule}) read them with
 * {@link mixedBatchAdapterNames}. Rows named {@link BASE_ADAPTER_NAME} use no adapter.
 */
import * as tf from '@tensorflow/tfjs';

/** The row name that means "no adapter" (HF PEFT's `"__base__"`). */
export const BASE_ADAPTER_NAME = '__base__';

let current: readonly string[] | undefined;

/**
 * Runs `fn` with `names` as the per-row adapters of every forward pass inside it (one name per
 * batch row), then restores what was set before (calls may nest).
 */
export function withMixedBatch<T>(names: readonly string[] | undefined, fn: () => T): T {
  const saved = current;
  current = names ? [...names] : undefined;
  try {
    return fn();
  } finally {
    current = saved;
  }
}

/** The per-row adapter names of the forward pass running now, or undefined outside a mixed batch. */
export function mixedBatchAdapterNames(): readonly string[] | undefined {
  return current;
}

/**
 * A module that computes each row with the adapter {@link mixedBatchAdapterNames} names for it
 * (LoRA layers, `modules_to_save` wrappers). {@link PeftModel.forward} collects `adapterNames()` of
 * these to check the names it is given, as HF PEFT does.
 */
export interface MixedBatchModule {
  readonly supportsMixedBatch: true;
  /** The adapters this module holds. */
  adapterNames(): string[];
}

/** True for modules implementing {@link MixedBatchModule}. */
export function isMixedBatchModule(m: unknown): m is MixedBatchModule {
  return !!m && (m as Partial<MixedBatchModule>).supportsMixedBatch === true && typeof (m as Partial<MixedBatchModule>).adapterNames === 'function';
}

/** Row indices per distinct name, in order of first appearance (HF's `sub_batch_indices_list`). */
export function groupRows(names: readonly string[]): { name: string; rows: number[] }[] {
  const groups = new Map<string, number[]>();
  names.forEach((n, i) => {
    const g = groups.get(n);
    if (g) g.push(i);
    else groups.set(n, [i]);
  });
  return [...groups].map(([name, rows]) => ({ name, rows }));
}

/**
 * Applies `fn` to the rows of `x` (first axis = batch) grouped by adapter name and puts each
 * group's result back in its rows: `out[i] = fn(names[i], x[rows of names[i]])[position of i]`.
 * `fn` returning null means zeros for those rows (a layer without that adapter, or `__base__`).
 * A tensor already the whole batch's (one group) is returned as `fn` gave it.
 *
 * @param x - [B, ...] with B = names.length
 * @returns [B, ...out] (a new tensor), or null when `fn` returned null for every group
 * @throws Error when x has another number of rows than `names` (HF: "Length of `adapter_names`
 *   should be the same as the number of inputs")
 */
export function applyPerRow(x: tf.Tensor, names: readonly string[], fn: (name: string, rows: tf.Tensor) => tf.Tensor | null, where = 'layer'): tf.Tensor | null {
  const B = x.shape[0];
  if (B !== names.length) {
    throw new Error(`${where}: adapterNames has ${names.length} entries but the batch has ${B} rows; give one adapter name per row (${BASE_ADAPTER_NAME} for the base model)`);
  }
  const groups = groupRows(names);
  if (groups.length === 1) return fn(groups[0].name, x);
  let none = false;
  const out = tf.tidy(() => {
    const parts: (tf.Tensor | null)[] = groups.map((g) => fn(g.name, tf.gather(x, tf.tensor1d(g.rows, 'int32'))));
    const shaped = parts.find((p): p is tf.Tensor => p !== null);
    if (!shaped) {
      none = true;
      return tf.scalar(0);
    }
    const tail = shaped.shape.slice(1);
    // Concatenate in group order, then undo the permutation with one gather.
    const full = tf.concat(parts.map((p, i) => p ?? tf.zeros([groups[i].rows.length, ...tail], shaped.dtype)), 0);
    const order = groups.flatMap((g) => g.rows);
    const inverse = new Int32Array(B);
    order.forEach((row, j) => (inverse[row] = j));
    return tf.gather(full, tf.tensor1d(inverse, 'int32'));
  });
  if (none) {
    out.dispose();
    return null;
  }
  return out;
}
