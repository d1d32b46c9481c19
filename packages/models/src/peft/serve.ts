/**
 * Serving adapters: loading adapter folders onto one shared base ({@link loadAdapters}), text
 * generation with streaming ({@link generateText}) and sequence classification
 * ({@link classify}), with one adapter, the base alone, or one adapter per input (a mixed batch,
 * HF PEFT's `adapter_names`). What `peftkit generate` and the `generate` step call.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { UserError, type PeftMethod, type StepLogger } from '@peftkit/core';
import type { LoadedModel, ModelInputs } from '../model.js';
import { applyPromptFormat, readPromptFormat, type PromptFormat } from './prompt-format.js';
import type { Tokenizer } from '../tokenizer/tokenizer.js';
import { generateAsync, type CausalForward } from '../generation.js';
import { PeftModel, type AdapterHandle } from './peft-model.js';
import { BASE_ADAPTER_NAME } from './mixed-batch.js';
import { HF_ADAPTER_CONFIG } from './hf-adapter-io.js';
import { inspectAdapter } from './inspect.js';

/** An adapter to load: the name to serve it under and its folder. */
export interface AdapterSource {
  name: string;
  path: string;
}

const quiet: StepLogger = { error() {}, warn() {}, info() {}, debug() {} };

/**
 * The registered method that reads the adapter folder `dir`: the first whose
 * `recognizesAdapterConfig` accepts its `adapter_config.json` (AdapterHub's layout, or HF PEFT's
 * `peft_type`), else the one whose `peftType` equals the config's `peft_type` and that has `loadAdapter`.
 * @throws UserError when the folder has no adapter_config.json (saying when it is a model checkpoint
 *   instead), the JSON is invalid, or no registered method loads it (listing what is registered).
 */
export function methodForAdapter(dir: string, methods: readonly PeftMethod[]): PeftMethod {
  const file = join(dir, HF_ADAPTER_CONFIG);
  if (!existsSync(file)) {
    const model = existsSync(join(dir, 'config.json'));
    throw new UserError(`${dir}: no ${HF_ADAPTER_CONFIG}; ${model ? 'this is a model checkpoint, not an adapter' : 'not an adapter folder'}`, {
      file, hint: model ? 'give it as the base model (--model), and adapters as name=folder' : 'give the folder that holds adapter_config.json (peftkit inspect describes a folder)',
    });
  }
  let json: Record<string, unknown>;
  try {
    json = JSON.parse(readFileSync(file, 'utf8'));
  } catch (e) {
    throw new UserError(`${file}: not valid JSON (${(e as Error).message})`, { file });
  }
  const found = methods.find((m) => m.loadAdapter && m.recognizesAdapterConfig?.(json)) ?? methods.find((m) => m.loadAdapter && m.peftType != null && m.peftType === json.peft_type);
  if (!found) {
    const what = typeof json.peft_type === 'string' ? `peft_type ${json.peft_type}` : 'this adapter_config.json';
    const have = methods.filter((m) => m.loadAdapter).map((m) => `${m.name}${m.peftType ? ` (${m.peftType})` : ''}`);
    throw new UserError(`${file}: no registered method loads ${what}`, { file, pointer: '/peft_type', hint: `methods that load adapters: ${have.join(', ') || 'none'}; a plugin may add more` });
  }
  return found;
}

/**
 * Loads adapter folders onto one base model, which is shared, never copied: each adapter costs its
 * own tensors only (HF PEFT's `PeftModel.from_pretrained` then `load_adapter`). Folders in HF PEFT's
 * format (any method a registered plugin loads) and AdapterHub's are accepted; the method is chosen
 * by {@link methodForAdapter}. When the model had no active adapter, the first one loaded becomes
 * active; the others are loaded inactive, as HF's `load_adapter` leaves them.
 * @param target - a loaded base model, or a PeftModel to add to.
 * @param methods - the registered methods (`registry.methods()`).
 * @returns the PeftModel holding them.
 * @throws UserError when a name is taken or is `__base__`, or a folder cannot be loaded onto this base
 *   (the method's error: shapes named with expected and got).
 */
export async function loadAdapters(target: LoadedModel | PeftModel, adapters: AdapterSource[], methods: readonly PeftMethod[], opts: { logger?: StepLogger } = {}): Promise<PeftModel> {
  const peft = target instanceof PeftModel ? target : new PeftModel(target);
  const active = [...peft.active];
  for (const { name, path } of adapters) {
    if (!/^[A-Za-z0-9_.-]+$/.test(name)) throw new UserError(`adapter name "${name}" may only hold letters, digits, "_", "." and "-"`, { hint: 'give adapters as name=folder' });
    if (name === BASE_ADAPTER_NAME) throw new UserError(`"${BASE_ADAPTER_NAME}" names the base model; give the adapter another name`);
    if (peft.adapters.has(name)) throw new UserError(`an adapter named "${name}" is already loaded; give each adapter its own name`);
    const method = methodForAdapter(path, methods);
    const handle = (await method.loadAdapter!(peft.base.model, path, { logger: opts.logger ?? quiet, seed: 0, adapterName: name })) as AdapterHandle;
    if (handle.name !== name) handle.name = name;
    handle.promptFormat ??= readPromptFormat(path);
    peft.addAdapter(handle);
    if (!active.length) active.push(name);
    opts.logger?.info(`loaded adapter "${name}" (${method.name}) from ${path}`);
  }
  peft.setActive(active);
  return peft;
}

/** {@link withAdapter} for an asynchronous `fn`: the active set is restored once its promise settles. */
async function withAdapterAsync<T>(peft: PeftModel, adapter: string | undefined, fn: () => Promise<T>): Promise<T> {
  if (adapter === undefined) return fn();
  const saved = [...peft.active];
  peft.setActive(adapter === BASE_ADAPTER_NAME ? [] : [adapter]);
  try {
    return await fn();
  } finally {
    peft.setActive(saved);
  }
}

/** What a result reports as its adapter: `asked`, else the active set (`a+b`), `__base__` when none is active; null for a plain model. */
function adapterUsed(model: LoadedModel | PeftModel, asked: string | undefined): string | null {
  if (asked !== undefined) return asked;
  if (!(model instanceof PeftModel)) return null;
  return model.active.length ? model.active.join('+') : BASE_ADAPTER_NAME;
}

/** What {@link adapterMismatches} found: nothing when the adapter fits. */
export interface AdapterFit {
  /** Number of mismatches (0: the adapter fits). */
  count: number;
  /** The first `shown` mismatches in words, one line each, then `... and N more` when cut. */
  lines: string[];
}

/**
 * Checks an adapter folder against a loaded base before it is loaded: module names and features,
 * widths, heads, task (the checks of {@link inspectAdapter} with `base`, from the adapter's config
 * and safetensors header only). What `peftkit generate` / `classify` and the `inject` step's
 * `adapter` setting run, so that an adapter for another architecture or shape is refused before
 * anything trains, naming the first mismatches.
 * @param shown - mismatches listed at most (the rest are counted).
 */
export async function adapterMismatches(path: string, base: LoadedModel, shown = 5): Promise<AdapterFit> {
  const c = (await inspectAdapter(path, { base })).compatibility;
  if (!c || c.compatible) return { count: 0, lines: [] };
  const lines = c.mismatches.slice(0, shown).map((m) => m.message);
  if (c.mismatches.length > shown) lines.push(`... and ${c.mismatches.length - shown} more`);
  return { count: c.mismatches.length, lines };
}

/** Runs `fn` with exactly `adapter` active (`__base__`: none), then restores the active set. */
function withAdapter<T>(peft: PeftModel, adapter: string | undefined, fn: () => T): T {
  if (adapter === undefined) return fn();
  const saved = [...peft.active];
  peft.setActive(adapter === BASE_ADAPTER_NAME ? [] : [adapter]);
  try {
    return fn();
  } finally {
    peft.setActive(saved);
  }
}

function tokenizerOf(model: LoadedModel | PeftModel): Tokenizer {
  const loaded = model instanceof PeftModel ? model.base : model;
  if (!loaded.tokenizer) throw new UserError(`the model from ${loaded.source} has no tokenizer`, { hint: 'load a model folder that holds tokenizer.json (or vocab.json + merges.txt, or vocab.txt)' });
  return loaded.tokenizer;
}

/** Checks `adapter` / `adapterNames` against what `model` holds; a plain model takes neither (except `__base__`). */
function checkAdapters(model: LoadedModel | PeftModel, count: number, adapter?: string, adapterNames?: string[]): void {
  if (adapterNames && adapterNames.length !== count) throw new UserError(`${adapterNames.length} adapter names for ${count} inputs; give one per input (${BASE_ADAPTER_NAME} for the base model)`);
  const names = [...(adapter !== undefined ? [adapter] : []), ...(adapterNames ?? [])].filter((n) => n !== BASE_ADAPTER_NAME);
  const loaded = model instanceof PeftModel ? [...model.adapters.keys()] : [];
  const unknown = [...new Set(names.filter((n) => !loaded.includes(n)))];
  if (unknown.length) throw new UserError(`no adapter named ${unknown.map((n) => `"${n}"`).join(', ')}; loaded: ${loaded.join(', ') || 'none'}`, { hint: `load adapters as name=folder; ${BASE_ADAPTER_NAME} means the base model` });
}

/** Options of {@link generateText}. */
export interface GenerateTextOptions {
  /** Tokens to generate per prompt at most (default 50). */
  maxNewTokens?: number;
  /** Sample (true) or greedy (false). Default: HF's rule, sampling when temperature, topK or topP is given. */
  doSample?: boolean;
  temperature?: number;
  topK?: number;
  topP?: number;
  /** Seed of the sampling stream. */
  seed?: number;
  /** The adapter to use for every prompt (`__base__`: the base model); absent: the active set. */
  adapter?: string;
  /** One adapter per prompt, all in one batch (mixed batch; LoRA adapters only); overrides `adapter`. */
  adapterNames?: string[];
  /** Render each prompt as a user message with the tokenizer's chat template (with the generation prompt). */
  chat?: boolean;
  /** Token id(s) that end a prompt's generation; default the model config's `eos_token_id`; null: never. */
  eosTokenId?: number | number[] | null;
  /**
   * Streaming: called as text appears, per prompt, with the new piece (decoded so far minus what was
   * already given; a piece ending inside a multi-byte character is held back until it completes).
   */
  onText?: (event: { index: number; text: string; tokenId: number; step: number }) => void;
}

/** One prompt's result. */
export interface Generation {
  prompt: string;
  /**
   * The adapter used: the one asked for, else the PEFT model's active adapter(s) (joined by `+`
   * when several are stacked), `__base__` when none is active; null for a plain model.
   */
  adapter: string | null;
  /** The generated text, special tokens removed. */
  text: string;
  /** The generated token ids (the EOS that ended it included). */
  tokenIds: number[];
  /** `eos` when an end-of-sequence token ended it, else `length`. */
  finishReason: 'eos' | 'length';
}

/**
 * Generates a continuation of each prompt with the model's tokenizer (HF's `generate`: greedy or
 * sampling with temperature / top-k / top-p, key/value cache; see `generation.ts`). All prompts go
 * in one batch (left-padded). With `adapterNames`, each prompt uses its own adapter in that batch.
 * Logits are read back asynchronously, so this runs on every backend, WebGPU in Node included.
 * @returns one {@link Generation} per prompt, in order.
 * @throws UserError when the model has no tokenizer, is not a causal LM, an adapter name is unknown,
 *   `chat` is set but the tokenizer has no chat template, or a prompt is empty after tokenization.
 */
export async function generateText(model: LoadedModel | PeftModel, prompts: string[], opts: GenerateTextOptions = {}): Promise<Generation[]> {
  const base = model instanceof PeftModel ? model.base.model : model.model;
  if (base.task !== 'causal-lm') throw new UserError(`generation needs a causal LM, but the model is a ${base.task} model`, { hint: 'load it with task causal-lm; for classifiers use classify' });
  if (!prompts.length) return [];
  checkAdapters(model, prompts.length, opts.adapter, opts.adapterNames);
  const tok = tokenizerOf(model);
  if (opts.chat && !tok.chatTemplate) throw new UserError('chat is set but the tokenizer has no chat template', { hint: 'drop chat, or use a model whose tokenizer_config.json has chat_template' });
  const ids = prompts.map((p, i) => {
    const text = opts.chat ? tok.applyChatTemplate([{ role: 'user', content: p }], { addGenerationPrompt: true }) : p;
    // A chat template writes its own special tokens.
    const enc = tok.encode(text, { addSpecialTokens: !opts.chat });
    if (!enc.length) throw new UserError(`prompt ${i + 1} is empty after tokenization`, { hint: 'give at least one character of text' });
    return enc;
  });

  const emitted = prompts.map(() => '');
  const tokens: number[][] = prompts.map(() => []);
  const done = prompts.map(() => false);
  const eosList = opts.eosTokenId === undefined ? toList(base.config.eos_token_id) : toList(opts.eosTokenId);
  const onToken = opts.onText
    ? (stepTokens: number[], step: number) => {
        stepTokens.forEach((t, b) => {
          if (done[b]) return;
          tokens[b].push(t);
          if (eosList.includes(t)) done[b] = true;
          const full = tok.decode(tokens[b], { skipSpecialTokens: true });
          if (full.endsWith('\uFFFD') && !done[b]) return; // an incomplete UTF-8 sequence: wait for the rest
          const piece = full.startsWith(emitted[b]) ? full.slice(emitted[b].length) : full;
          emitted[b] = full;
          if (piece) opts.onText!({ index: b, text: piece, tokenId: t, step });
        });
      }
    : undefined;
  const gen = (m: CausalForward | PeftModel) =>
    generateAsync(m, ids, { maxNewTokens: opts.maxNewTokens ?? 50, doSample: opts.doSample, temperature: opts.temperature, topK: opts.topK, topP: opts.topP, seed: opts.seed, eosTokenId: opts.eosTokenId, onToken });

  let result;
  if (model instanceof PeftModel && opts.adapterNames) {
    const names = opts.adapterNames;
    const mixed: CausalForward = { config: base.config, forward: (inputs: ModelInputs) => model.forward(inputs, { adapterNames: names }) };
    result = await gen(mixed);
  } else if (model instanceof PeftModel) result = await withAdapterAsync(model, opts.adapter, () => gen(model));
  else result = await gen(model.model);

  return prompts.map((prompt, b) => {
    const out = result.generated[b];
    return {
      prompt,
      adapter: opts.adapterNames ? opts.adapterNames[b] : adapterUsed(model, opts.adapter),
      text: tok.decode(out, { skipSpecialTokens: true }),
      tokenIds: out,
      finishReason: out.length && eosList.includes(out[out.length - 1]) ? 'eos' : 'length',
    };
  });
}

function toList(x: unknown): number[] {
  return x == null ? [] : Array.isArray(x) ? (x as number[]) : [x as number];
}

/** Options of {@link classify}. */
export interface ClassifyOptions {
  /** The adapter for every input (`__base__`: the base model); absent: the active set. */
  adapter?: string;
  /** One adapter per input (mixed batches; LoRA adapters and their heads only); overrides `adapter`. */
  adapterNames?: string[];
  /** Inputs per forward pass (default 16). Decoders without a pad token run one input at a time. */
  batchSize?: number;
}

/** One input's labels. */
export interface Classification {
  text: string;
  adapter: string | null;
  /** The most probable label's name (config's `id2label`, else `LABEL_<i>`). */
  label: string;
  labelId: number;
  /** Softmax of the logits, per label name, in label order. */
  probabilities: Record<string, number>;
}

/**
 * Labels each text with a sequence-classification model (a SEQ_CLS adapter's base loaded with task
 * `sequence-classification`): softmax over the head's logits [B, num_labels]. Texts are encoded
 * with the tokenizer's special tokens ([CLS] ... [SEP] for BERT) and right-padded per batch. Probabilities are
 * read back asynchronously (WebGPU in Node has no synchronous read).
 * @returns one {@link Classification} per text, in order.
 * @throws UserError when the model is not a sequence classifier (saying how to load it), has no
 *   tokenizer, or an adapter name is unknown.
 */
export async function classify(model: LoadedModel | PeftModel, texts: string[], opts: ClassifyOptions = {}): Promise<Classification[]> {
  const base = model instanceof PeftModel ? model.base.model : model.model;
  if (base.task !== 'sequence-classification') {
    throw new UserError(`classification needs a sequence-classification model, but the model is a ${base.task} model`, { hint: 'load the base with task sequence-classification and the adapter\'s num_labels (peftkit inspect shows them)' });
  }
  checkAdapters(model, texts.length, opts.adapter, opts.adapterNames);
  const tok = tokenizerOf(model);
  const cfg = base.config;
  const id2label = (cfg.id2label ?? {}) as Record<string, string>;
  const pad = (cfg.pad_token_id as number | null | undefined) ?? tok.padTokenId;
  const decoder = !['bert', 'distilbert', 'roberta'].includes(cfg.model_type);
  // Decoders pool the last non-pad token: without a pad id, padded rows would pool the wrong one.
  const batchSize = decoder && cfg.pad_token_id == null ? 1 : Math.max(1, opts.batchSize ?? 16);
  const out: Classification[] = [];
  for (let s = 0; s < texts.length; s += batchSize) {
    const chunk = texts.slice(s, s + batchSize);
    const enc = chunk.map((t) => tok.encode(t));
    const L = Math.max(1, ...enc.map((e) => e.length));
    const ids = enc.map((e) => [...e, ...new Array(L - e.length).fill(pad ?? 0)]);
    const mask = enc.map((e) => [...new Array(e.length).fill(1), ...new Array(L - e.length).fill(0)]);
    const names = opts.adapterNames?.slice(s, s + batchSize);
    const probsT = tf.tidy(() => {
      const inputs: ModelInputs = { inputIds: tf.tensor2d(ids, [chunk.length, L], 'int32'), attentionMask: tf.tensor2d(mask, [chunk.length, L], 'int32') };
      const run = () => (model instanceof PeftModel ? model.forward(inputs, { adapterNames: names }) : model.model.forward(inputs));
      const { logits } = model instanceof PeftModel && !names ? withAdapter(model, opts.adapter, run) : run();
      return tf.softmax(logits as tf.Tensor2D, -1);
    });
    const probs = (await probsT.array()) as number[][];
    probsT.dispose();
    probs.forEach((p, i) => {
      const labels = p.map((_, j) => id2label[String(j)] ?? `LABEL_${j}`);
      const best = p.reduce((b, x, j) => (x > p[b] ? j : b), 0);
      out.push({ text: chunk[i], adapter: names ? names[i] : adapterUsed(model, opts.adapter), label: labels[best], labelId: best, probabilities: Object.fromEntries(labels.map((l, j) => [l, p[j]])) });
    });
  }
  return out;
}

/**
 * Labels each text with a causal LM trained to write a label word after a prompt (the dataset
 * step's `classification` shape with `label_words`): the text goes into the format's
 * `text_template`, and each label scores `Σ_j log p(w_j | prompt, w_<j)` over its word's tokens;
 * probabilities are the softmax of those scores over the labels. One forward pass per text, with
 * one row per label (right-padded, so positions are unchanged). Log-probabilities are read back
 * asynchronously (WebGPU in Node has no synchronous read).
 * @returns one {@link Classification} per text, in order, labels named by `format.labels`.
 * @throws UserError when the model is not a causal LM or the format has no label words.
 */
export async function classifyByLabelWords(model: LoadedModel | PeftModel, texts: string[], format: PromptFormat, opts: { adapter?: string } = {}): Promise<Classification[]> {
  const base = model instanceof PeftModel ? model.base.model : model.model;
  if (base.task !== 'causal-lm') throw new UserError(`label-word classification needs a causal LM, but the model is a ${base.task} model`);
  const words = format.label_words;
  if (!words?.length) throw new UserError('the prompt format has no label_words: this adapter was not trained to write a label word', { hint: 'classify with a sequence-classification adapter, or train with "label_words" in the dataset step' });
  checkAdapters(model, texts.length, opts.adapter);
  const tok = tokenizerOf(model);
  const names = words.map((w, i) => format.labels?.[i] ?? w.trim());
  const wordIds = words.map((w) => tok.encode(w, { addSpecialTokens: false }));
  const pad = tok.padTokenId ?? tok.eosTokenId ?? 0;
  const out: Classification[] = [];
  for (const text of texts) {
    const prompt = tok.encode(applyPromptFormat(format, text));
    const rows = wordIds.map((w) => [...prompt, ...w]);
    const L = Math.max(...rows.map((r) => r.length));
    const logpT = tf.tidy(() => {
      const ids = tf.tensor2d(rows.map((r) => [...r, ...new Array(L - r.length).fill(pad)]), [rows.length, L], 'int32');
      const mask = tf.tensor2d(rows.map((r) => [...new Array(r.length).fill(1), ...new Array(L - r.length).fill(0)]), [rows.length, L], 'int32');
      const run = () => (model instanceof PeftModel ? model.forward({ inputIds: ids, attentionMask: mask }) : model.model.forward({ inputIds: ids, attentionMask: mask }));
      const { logits } = model instanceof PeftModel ? withAdapter(model, opts.adapter, run) : run();
      return tf.logSoftmax(logits as tf.Tensor3D, -1);
    });
    const logp = (await logpT.array()) as number[][][];
    logpT.dispose();
    // The word's j-th token is predicted at the position before it.
    const scores = wordIds.map((w, c) => w.reduce((s, id, j) => s + logp[c][prompt.length - 1 + j][id], 0));
    const max = Math.max(...scores);
    const exp = scores.map((s) => Math.exp(s - max));
    const z = exp.reduce((a, b) => a + b, 0);
    const p = exp.map((e) => e / z);
    const best = p.reduce((b, x, j) => (x > p[b] ? j : b), 0);
    out.push({ text, adapter: adapterUsed(model, opts.adapter), label: names[best], labelId: best, probabilities: Object.fromEntries(names.map((l, j) => [l, p[j]])) });
  }
  return out;
}
