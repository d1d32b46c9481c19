/**
 * Autoregressive generation for causal LMs with the key/value cache, following HF's
 * `GenerationMixin` (generation/utils.py): greedy search or sampling with temperature, top-k and
 * top-p (Holtzman et al. 2020) applied in HF's order; rows stop independently at EOS.
 */
import * as tf from '@tensorflow/tfjs';
import type { KVCache, ModelConfig, ModelInputs, ModelOutput } from './model.js';
import { PeftModel } from './peft/peft-model.js';
import { mulberry32, random } from './nn/rng.js';

/** Anything with a causal-LM forward: a `PreTrainedModel`, a `PeftModel`, or a wrapper. */
export interface CausalForward {
  forward(inputs: ModelInputs): ModelOutput;
  /** Read for the default EOS token id. */
  config?: ModelConfig;
}

/** Options of {@link generate}. */
export interface GenerateOptions {
  /** Tokens to add per row at most. */
  maxNewTokens: number;
  /**
   * Sample instead of taking the most likely token. Default: true when `temperature` (> 0), `topK`
   * or `topP` is given, else false (greedy, HF's default).
   */
  doSample?: boolean;
  /** Divides the logits before sampling; 0 means greedy. Default 1. */
  temperature?: number;
  /** Keep only the k most likely tokens (0 or absent: all). */
  topK?: number;
  /** Keep the smallest set of most likely tokens whose probability reaches p (1 or absent: all). */
  topP?: number;
  /** Token id(s) that end a row. Default: the model config's `eos_token_id`; null: never stop early. */
  eosTokenId?: number | number[] | null;
  /** Fills prompts on the left and rows that have finished. Default: `pad_token_id`, else the first EOS id, else 0. */
  padTokenId?: number;
  /** Seed of the sampling stream; absent: the global stream of `nn/rng` (set by `manualSeed`). */
  seed?: number;
  /**
   * Prompt mask [B, L] (1 = token, 0 = padding) when `inputIds` is an already padded tensor.
   * Number-array prompts of different lengths are left-padded and masked automatically.
   */
  attentionMask?: number[][] | tf.Tensor2D;
  /**
   * Pass position ids counted over non-padding tokens (HF's `prepare_inputs_for_generation`). Default
   * true, also with a prompt-learning adapter, which moves them behind its virtual positions: HF
   * PEFT drops them there ("Position ids are not supported for parameter efficient tuning"), so
   * that a left-padded row is read at other positions than the same prompt alone and generates
   * other text; false reproduces that.
   */
  positionIdsFromMask?: boolean;
  /** Called after each step with the token chosen for every row (padding for finished rows). */
  onToken?: (tokens: number[], step: number) => void;
}

/** What {@link generate} returns. */
export interface GenerateResult {
  /** Per row: the prompt (without padding) followed by the generated tokens. */
  sequences: number[][];
  /** Per row: the generated tokens only, up to and including the EOS that ended the row. */
  generated: number[][];
}

/**
 * Continues each prompt by up to `maxNewTokens` tokens, reusing the key/value cache (`useCache`).
 * The attention mask passed to the model covers only real positions (prompt and generated); a
 * prompt-learning adapter adds its virtual positions itself, as in HF PEFT.
 * @param model - a causal LM (`logits` [B, T, vocab]), a PeftModel, or any `{ forward }`.
 * @param inputIds - prompts: arrays of token ids (may differ in length) or a [B, L] tensor.
 * @throws Error when a prompt is empty or `maxNewTokens` is negative; errors of the model's forward
 *   (e.g. positions beyond `n_positions`) pass through.
 */
export function generate(model: CausalForward | PeftModel, inputIds: number[][] | tf.Tensor2D, opts: GenerateOptions): GenerateResult {
  const steps = generationSteps(model, inputIds, opts);
  try {
    let r = steps.next();
    while (!r.done) {
      const last = r.value;
      let rows: number[][];
      try {
        rows = last.arraySync();
      } finally {
        last.dispose();
      }
      r = steps.next(rows);
    }
    return r.value;
  } finally {
    steps.return(undefined as never); // runs the loop's `finally` (frees the cache) when a read threw
  }
}

/**
 * {@link generate} with asynchronous reads of the logits (and of tensor prompts), for backends that cannot
 * read synchronously (WebGPU in Node). Same tokens as {@link generate}.
 * @throws as {@link generate}.
 */
export async function generateAsync(model: CausalForward | PeftModel, inputIds: number[][] | tf.Tensor2D, opts: GenerateOptions): Promise<GenerateResult> {
  const ids = Array.isArray(inputIds) ? inputIds : ((await inputIds.array()) as number[][]);
  const mask = opts.attentionMask && !Array.isArray(opts.attentionMask) ? ((await opts.attentionMask.array()) as number[][]) : opts.attentionMask;
  const steps = generationSteps(model, ids, { ...opts, attentionMask: mask });
  try {
    let r = steps.next();
    while (!r.done) {
      const last = r.value;
      let rows: number[][];
      try {
        rows = await last.array();
      } finally {
        last.dispose();
      }
      r = steps.next(rows);
    }
    return r.value;
  } finally {
    steps.return(undefined as never); // runs the loop's `finally` (frees the cache) when a read threw
  }
}

/**
 * The generation loop as a generator: yields each step's last-position logits [B, vocab] (the driver reads
 * them, disposes the tensor and passes the rows back), returns the result. One loop for both drivers.
 */
function* generationSteps(model: CausalForward | PeftModel, inputIds: number[][] | tf.Tensor2D, opts: GenerateOptions): Generator<tf.Tensor2D, GenerateResult, number[][]> {
  if (!(opts.maxNewTokens >= 0)) throw new Error(`maxNewTokens must be a number ≥ 0, got ${opts.maxNewTokens}`);
  const config = model instanceof PeftModel ? model.base.model.config : model.config;
  const eos = toList(opts.eosTokenId === undefined ? (config?.eos_token_id as number | number[] | null | undefined) : opts.eosTokenId);
  const pad = opts.padTokenId ?? (config?.pad_token_id as number | null | undefined) ?? eos[0] ?? 0;
  const temperature = opts.temperature ?? 1;
  const doSample = (opts.doSample ?? (opts.temperature !== undefined || opts.topK !== undefined || opts.topP !== undefined)) && temperature > 0;
  const rand = opts.seed === undefined ? random : mulberry32(opts.seed);
  const positionsFromMask = opts.positionIdsFromMask ?? true;

  const { ids, mask } = padPrompts(inputIds, opts.attentionMask, pad);
  const B = ids.length;
  const sequences = ids.map((row, b) => row.filter((_, j) => mask[b][j] === 1));
  const generated: number[][] = ids.map(() => []);
  const done = new Array<boolean>(B).fill(false);
  const padded = mask.some((r) => r.includes(0));
  const seen = mask.map((r) => r.reduce((s, m) => s + m, 0)); // real tokens per row so far

  let cache: KVCache | undefined;
  let current = ids; // tokens fed at this step [B, T]
  try {
    for (let step = 0; step < opts.maxNewTokens; step++) {
      const S = mask[0].length;
      const T = current[0].length;
      const { last, present } = tf.tidy((() => {
        const inputs: ModelInputs = {
          inputIds: tf.tensor2d(current, [B, T], 'int32'),
          attentionMask: tf.tensor2d(mask, [B, S], 'int32'),
          pastKeyValues: cache,
          useCache: true,
        };
        if (padded && positionsFromMask) inputs.positionIds = tf.tensor2d(positionsOf(mask, T), [B, T], 'int32');
        const out = model.forward(inputs);
        const [, Tout, V] = out.logits.shape;
        return { last: tf.slice(out.logits, [0, Tout - 1, 0], [B, 1, V]).reshape([B, V]), present: out.pastKeyValues };
      }) as unknown as () => tf.TensorContainer) as unknown as { last: tf.Tensor2D; present?: KVCache };
      if (!present) throw new Error('generate: the model returned no pastKeyValues for useCache: true');
      disposeCache(cache);
      cache = present;
      const logits: number[][] = yield last;
      const tokens = logits.map((row, b) => (done[b] ? pad : doSample ? sample(row, temperature, opts.topK, opts.topP, rand) : argmax(row)));
      tokens.forEach((t, b) => {
        if (done[b]) return;
        generated[b].push(t);
        sequences[b].push(t);
        seen[b]++;
        if (eos.includes(t)) done[b] = true;
      });
      opts.onToken?.(tokens, step);
      if (done.every(Boolean)) break;
      current = tokens.map((t) => [t]);
      mask.forEach((r) => r.push(1)); // HF appends 1 for every row, finished or not
    }
  } finally {
    disposeCache(cache);
  }
  return { sequences, generated };
}

function toList(x: number | number[] | null | undefined): number[] {
  return x === null || x === undefined ? [] : Array.isArray(x) ? x : [x];
}

/** Left-pads ragged prompts; takes a given mask as it is. */
function padPrompts(inputIds: number[][] | tf.Tensor2D, mask: number[][] | tf.Tensor2D | undefined, pad: number): { ids: number[][]; mask: number[][] } {
  const rows = Array.isArray(inputIds) ? inputIds.map((r) => [...r]) : (inputIds.arraySync() as number[][]);
  if (!rows.length) throw new Error('generate: no prompts');
  if (mask) {
    const m = Array.isArray(mask) ? mask.map((r) => [...r]) : (mask.arraySync() as number[][]);
    if (m.length !== rows.length || m.some((r, i) => r.length !== rows[i].length)) throw new Error('generate: attentionMask must have the shape of inputIds');
    if (m.some((r) => !r.includes(1))) throw new Error('generate: a prompt has no unmasked token');
    return { ids: rows, mask: m };
  }
  const L = Math.max(...rows.map((r) => r.length));
  if (rows.some((r) => r.length === 0)) throw new Error('generate: a prompt is empty; give at least one token (e.g. BOS)');
  return {
    ids: rows.map((r) => [...new Array(L - r.length).fill(pad), ...r]),
    mask: rows.map((r) => [...new Array(L - r.length).fill(0), ...new Array(r.length).fill(1)]),
  };
}

/** Positions of the last T columns: number of real tokens before each, 1 at padding (HF's `cumsum - 1`, `masked_fill(mask == 0, 1)`). */
function positionsOf(mask: number[][], T: number): number[][] {
  return mask.map((r) => {
    let c = 0;
    const pos = r.map((m) => (m ? c++ : 1));
    return pos.slice(pos.length - T);
  });
}

function disposeCache(cache: KVCache | undefined): void {
  for (const l of cache ?? []) {
    l.key.dispose();
    l.value.dispose();
  }
}

function argmax(row: number[]): number {
  let best = 0;
  for (let i = 1; i < row.length; i++) if (row[i] > row[best]) best = i;
  return best;
}

/** HF's TemperatureLogitsWarper, TopKLogitsWarper, TopPLogitsWarper (in that order), then a draw from the softmax. */
function sample(row: number[], temperature: number, topK: number | undefined, topP: number | undefined, rand: () => number): number {
  const V = row.length;
  const scores = row.map((x) => x / temperature);
  const keep = new Array<boolean>(V).fill(true);
  if (topK && topK > 0 && topK < V) {
    const kth = [...scores].sort((a, b) => b - a)[topK - 1];
    scores.forEach((s, i) => (keep[i] = s >= kth));
  }
  if (topP !== undefined && topP < 1) {
    const order = scores.map((_, i) => i).filter((i) => keep[i]).sort((a, b) => scores[a] - scores[b]); // ascending
    const probs = softmax(order.map((i) => scores[i]));
    let cum = 0;
    // Drop the low tail whose cumulative probability is ≤ 1 - p; the most likely token always stays.
    for (let r = 0; r < order.length - 1; r++) {
      cum += probs[r];
      if (cum <= 1 - topP) keep[order[r]] = false;
    }
  }
  const ids = scores.map((_, i) => i).filter((i) => keep[i]);
  const probs = softmax(ids.map((i) => scores[i]));
  let u = rand();
  for (let r = 0; r < ids.length; r++) {
    u -= probs[r];
    if (u < 0) return ids[r];
  }
  return ids[ids.length - 1];
}

function softmax(xs: number[]): number[] {
  let m = -Infinity;
  for (const x of xs) if (x > m) m = x;
  const e = xs.map((x) => Math.exp(x - m));
  const s = e.reduce((a, b) => a + b, 0);
  return e.map((x) => x / s);
}
