/**
 * Reading the cases of `../shared/fixtures/hf-golden` (made by the real transformers 5.17 + peft
 * 0.21; see that folder's README.md) and comparing peftkit's numbers with theirs. The loading goes
 * through the user's path: `loadPretrained` for the base, `loadAdapters` with the registered
 * methods for the adapter, the trainer's `batchNllSum` for the loss, `writeHfAdapterFiles` for the
 * export.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import type { PeftMethod } from '@peftkit/core';
import type { Batch } from '@peftkit/data';
import { loadAdapters, loadPretrained, type LoadedPretrained, type PeftModel } from '@peftkit/models';
import { hfGolden } from '@peftkit/models/testing';
import { batchNllSum, targetCount } from '@peftkit/steps';

/** A tensor as the golden files hold it: row-major float32 values and their shape. */
export interface GoldenTensor {
  shape: number[];
  data: number[];
}

/** One case folder, read. */
export interface GoldenCase {
  name: string;
  dir: string;
  /** `causal-lm` (logits [B, T, vocab]) or `seq-cls` (logits [B, num_labels]). */
  task: 'causal-lm' | 'seq-cls';
  /** [B, T] each. */
  inputIds: number[][];
  attentionMask: number[][];
  base: GoldenTensor;
  adapter: GoldenTensor;
  merged?: GoldenTensor;
  /**
   * The loss HF computed (see the README for its definition) and the gradient of every trainable
   * adapter tensor, by the key the tensor is saved under (see {@link savedKeyOfParameter}).
   */
  grads?: { loss: number; labels: number[] | number[][]; grads: Record<string, GoldenTensor> };
}

/** The case folders present, sorted. */
export function goldenCaseNames(): string[] {
  const root = hfGolden();
  if (!existsSync(root)) return [];
  return readdirSync(root).filter((n) => existsSync(join(root, n, 'case.json'))).sort();
}

const readJson = <T>(file: string): T => JSON.parse(readFileSync(file, 'utf8')) as T;
const optional = <T>(file: string): T | undefined => (existsSync(file) ? readJson<T>(file) : undefined);

/**
 * The key under which peft saves the parameter that `named_parameters` (adapter name removed, as
 * hf_grads.json keys are) calls `key`: parameters kept in a ParameterDict still end in the adapter
 * name (`ia3_l.default`, `lora_embedding_A.default`), saved without it; DoRA's magnitude is a
 * module whose `.weight` peft drops on saving (`lora_magnitude_vector`). Other keys are unchanged.
 */
export function savedKeyOfParameter(key: string): string {
  return key.replace(/\.default$/, '').replace(/\.lora_magnitude_vector\.weight$/, '.lora_magnitude_vector');
}

/** Reads the case folder `name` of hf-golden. */
export function readGoldenCase(name: string): GoldenCase {
  const dir = hfGolden(name);
  const meta = readJson<{ task: GoldenCase['task'] }>(join(dir, 'case.json'));
  const inputs = readJson<{ input_ids: number[][]; attention_mask: number[][] }>(join(dir, 'inputs.json'));
  return {
    name,
    dir,
    task: meta.task,
    inputIds: inputs.input_ids,
    attentionMask: inputs.attention_mask,
    base: readJson(join(dir, 'hf_base.json')),
    adapter: readJson(join(dir, 'hf_adapter.json')),
    merged: optional(join(dir, 'hf_merged.json')),
    grads: savedKeys(optional(join(dir, 'hf_grads.json'))),
  };
}

function savedKeys(g: GoldenCase['grads']): GoldenCase['grads'] {
  return g && { ...g, grads: Object.fromEntries(Object.entries(g.grads).map(([k, v]) => [savedKeyOfParameter(k), v])) };
}

/** The case's base model, loaded as a user loads it (`loadPretrained`, the head of the case's task). */
export function loadGoldenBase(c: GoldenCase): Promise<LoadedPretrained> {
  return loadPretrained(join(c.dir, 'base'), { task: c.task === 'seq-cls' ? 'sequence-classification' : 'causal-lm', tokenizer: false });
}

/** The case's adapter loaded onto `base` by `loadAdapters` with `methods` (the registered ones), active, named `default`. */
export function loadGoldenAdapter(base: LoadedPretrained, c: GoldenCase, methods: readonly PeftMethod[]): Promise<PeftModel> {
  return loadAdapters(base, [{ name: 'default', path: join(c.dir, 'adapter') }], methods);
}

/** The case's inputs as int32 tensors [B, T]; the caller disposes them. */
export function goldenInputs(c: GoldenCase): { inputIds: tf.Tensor2D; attentionMask: tf.Tensor2D } {
  return { inputIds: tf.tensor2d(c.inputIds, undefined, 'int32'), attentionMask: tf.tensor2d(c.attentionMask, undefined, 'int32') };
}

/**
 * The case's inputs and HF's labels as the trainer's {@link Batch}: causal LM, labels = input_ids with
 * -100 where attention_mask is 0; sequence classification, class labels [num_labels - 1, 0].
 */
export function goldenBatch(c: GoldenCase): Batch {
  const B = c.inputIds.length;
  const T = c.inputIds[0].length;
  const flat = (rows: number[][]) => Int32Array.from(rows.flat());
  const labels = c.grads?.labels;
  return {
    shape: [B, T],
    inputIds: flat(c.inputIds),
    attentionMask: flat(c.attentionMask),
    labels: c.task === 'causal-lm' ? flat(labels as number[][]) : new Int32Array(B * T).fill(-100),
    ...(c.task === 'seq-cls' ? { classLabels: Int32Array.from(labels as number[]) } : {}),
    promptLengths: new Int32Array(B),
    indices: Int32Array.from({ length: B }, (_, i) => i),
    epoch: 0,
    batch: 0,
  };
}

/** How far one tensor is from HF's, relative to the largest magnitude of HF's values compared. */
export interface Deviation {
  /** max |ours − HF| over the compared values. */
  maxAbs: number;
  /** max |HF| over the compared values. */
  scale: number;
  /** maxAbs / scale. */
  relative: number;
  /** Where the largest difference is (flat index). */
  at: number;
}

/**
 * Compares `ours` with HF's `ref`, elementwise. For causal-LM logits [B, T, V] pass the attention
 * mask [B, T]: positions where it is 0 are not compared (their logits are not defined by HF).
 * @throws Error when the shapes differ.
 */
export function deviation(ours: tf.Tensor, ref: GoldenTensor, mask?: number[][]): Deviation {
  if (ours.shape.join() !== ref.shape.join()) throw new Error(`shape [${ours.shape}] differs from HF's [${ref.shape}]`);
  const a = ours.dataSync();
  const inner = mask ? a.length / mask.flat().length : 1;
  const m = mask?.flat();
  let maxAbs = 0;
  let scale = 0;
  let at = -1;
  for (let i = 0; i < a.length; i++) {
    if (m && !m[Math.floor(i / inner)]) continue;
    const d = Math.abs(a[i] - ref.data[i]);
    if (at < 0 || d > maxAbs) {
      maxAbs = d;
      at = i;
    }
    scale = Math.max(scale, Math.abs(ref.data[i]));
  }
  return { maxAbs, scale, relative: scale ? maxAbs / scale : maxAbs, at };
}

/** The forward pass of `run` on the case's inputs (through a {@link PeftModel} or a bare model): logits, a new tensor. */
export function goldenLogits(model: { forward: PeftModel['forward'] }, c: GoldenCase): tf.Tensor {
  const x = goldenInputs(c);
  try {
    return tf.tidy(() => model.forward(x).logits);
  } finally {
    x.inputIds.dispose();
    x.attentionMask.dispose();
  }
}

/**
 * The mean loss of the case (HF's definition, see the README) and its gradient with respect to the
 * active adapter's trainable tensors, by saved key, as the trainer computes them (`batchNllSum` /
 * `targetCount`).
 * @throws Error when an adapter tensor is not trainable (it would silently get no gradient).
 */
export function goldenGradients(peft: PeftModel, c: GoldenCase): { loss: number; grads: Map<string, tf.Tensor> } {
  const batch = goldenBatch(c);
  const task = c.task === 'seq-cls' ? 'sequence-classification' : 'causal-lm';
  const n = targetCount(batch, task, peft);
  const params = peft.trainableParameters();
  const frozen = params.filter(([, v]) => !v.trainable).map(([k]) => k);
  if (frozen.length) throw new Error(`adapter tensors not trainable: ${frozen.join(', ')}`);
  const { value, grads } = tf.variableGrads(() => tf.div(batchNllSum(peft, batch, task), n) as tf.Scalar, params.map(([, v]) => v));
  const byVar = new Map(params.map(([k, v]) => [v.name, k]));
  const out = new Map<string, tf.Tensor>();
  for (const [name, g] of Object.entries(grads)) out.set(byVar.get(name)!, g);
  const loss = value.dataSync()[0];
  value.dispose();
  return { loss, grads: out };
}
