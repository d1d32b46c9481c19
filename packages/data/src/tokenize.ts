import { UserError } from '@peftkit/core';
import type { ChatMessage, Tokenizer } from '@peftkit/models';
import type { ShapeRow } from './shapes.js';
import { renderInstructionPrompt, splitTextTemplate, type InstructionTemplate } from './templates.js';
import { IGNORE_INDEX, type DataShape, type SplitSummary, type TokenizedExample } from './types.js';

/** What tokenization needs besides the rows. */
export interface TokenizeOptions {
  shape: DataShape;
  tokenizer: Tokenizer;
  /** Longest example, in tokens (also the packing block size). */
  maxLength: number;
  /** `text` only: concatenate documents (EOS between them) and cut fixed blocks of `maxLength`. */
  packing?: boolean;
  /** `instruction`: the prompt template. */
  template: InstructionTemplate;
  /** `classification`: the prompt, with one `{text}`. */
  textTemplate: string;
  /** `classification`: label names (index = class id). */
  labelNames?: string[];
  /** `classification` as a causal LM: the label words, encoded exactly as written (index = class id). */
  labelWords?: string[];
  /** Names a row in messages (`data/train.jsonl: line 12`). */
  locate?: (row: number) => string;
}

/** Token ids a tokenizer adds around a text (`addSpecialTokens`): [BOS] for Llama, [CLS] / [SEP] for BERT, none for GPT-2. */
export interface SpecialFrame {
  prefix: number[];
  suffix: number[];
}

/**
 * Finds what `encode(text)` adds around `encode(text, {addSpecialTokens: false})`, by encoding a
 * probe both ways. Examples are built from pieces encoded without special tokens, then framed.
 */
export function specialFrame(tok: Tokenizer): SpecialFrame {
  const plain = tok.encode('a', { addSpecialTokens: false });
  const full = tok.encode('a', { addSpecialTokens: true });
  for (let i = 0; i + plain.length <= full.length; i++) {
    if (plain.every((id, j) => full[i + j] === id)) return { prefix: full.slice(0, i), suffix: full.slice(i + plain.length) };
  }
  return { prefix: [], suffix: [] };
}

/** The pad id of batches: the tokenizer's pad token, else its EOS. @throws UserError when it has neither. */
export function padIdOf(tok: Tokenizer): number {
  const id = tok.padTokenId ?? tok.eosTokenId;
  if (id === undefined) throw new UserError('the tokenizer has neither a pad token nor an EOS token, so batches cannot be padded', { hint: 'set "pad_token" or "eos_token" in tokenizer_config.json' });
  return id;
}

/**
 * The label list of a classification dataset: `given` when not empty, else the distinct labels of
 * `rows` sorted (numerically when all are integers, else as strings).
 */
export function labelList(given: string[] | undefined, rows: ShapeRow[]): string[] {
  if (given && given.length) return [...given];
  const set = new Set<string>();
  for (const r of rows) if (r.shape === 'classification') set.add(String(r.label));
  const all = [...set];
  return all.every((s) => /^-?\d+$/.test(s)) ? all.sort((a, b) => Number(a) - Number(b)) : all.sort();
}

/**
 * A label's class id: its index in `names`, or the label itself when it is an integer id in range
 * and not also a name.
 * @returns -1 when the label is neither.
 */
export function labelId(label: string | number, names: string[]): number {
  const i = names.indexOf(String(label));
  if (i >= 0) return i;
  const n = typeof label === 'number' ? label : /^\d+$/.test(label) ? Number(label) : NaN;
  return Number.isInteger(n) && n >= 0 && n < names.length ? n : -1;
}

/**
 * Splits a chat's rendering into segments, marking the assistant turns as targets.
 *
 * For assistant message i, the text between the rendering of messages [0, i) with the generation
 * prompt and the rendering of [0, i] is the assistant's turn, end-of-turn marker included (what HF
 * marks with `{% generation %}`). When a template does not render conversations as growing
 * prefixes, only the assistant's content, found in order, is a target.
 */
export function chatSegments(tok: Tokenizer, messages: ChatMessage[]): { text: string; target: boolean }[] {
  const full = tok.applyChatTemplate(messages, { addGenerationPrompt: false });
  const incremental = (): { text: string; target: boolean }[] | null => {
    const segs: { text: string; target: boolean }[] = [];
    let cursor = 0;
    for (let i = 0; i < messages.length; i++) {
      if (messages[i].role !== 'assistant') continue;
      let before: string;
      let upto: string;
      try {
        before = tok.applyChatTemplate(messages.slice(0, i), { addGenerationPrompt: true });
        upto = tok.applyChatTemplate(messages.slice(0, i + 1), { addGenerationPrompt: false });
      } catch {
        return null;
      }
      if (before.length < cursor || !upto.startsWith(before) || !full.startsWith(upto) || upto.length === before.length) return null;
      segs.push({ text: full.slice(cursor, before.length), target: false }, { text: full.slice(before.length, upto.length), target: true });
      cursor = upto.length;
    }
    segs.push({ text: full.slice(cursor), target: false });
    return segs;
  };
  const segs = incremental();
  if (segs) return segs.filter((s) => s.text !== '');
  const out: { text: string; target: boolean }[] = [];
  let cursor = 0;
  for (const m of messages) {
    if (m.role !== 'assistant' || m.content === '') continue;
    const at = full.indexOf(m.content, cursor);
    if (at < 0) throw new Error(`the chat template's rendering does not contain the assistant message ${JSON.stringify(m.content.slice(0, 40))}`);
    out.push({ text: full.slice(cursor, at), target: false }, { text: m.content, target: true });
    cursor = at + m.content.length;
  }
  out.push({ text: full.slice(cursor), target: false });
  return out.filter((s) => s.text !== '');
}

function concat(parts: ArrayLike<number>[]): number[] {
  const out: number[] = [];
  for (const p of parts) for (let i = 0; i < p.length; i++) out.push(p[i]);
  return out;
}

/**
 * Tokenizes the rows of one split.
 *
 * - `text`: frame + text + EOS, all targets; cut at `maxLength`. With packing, those documents are
 *   concatenated and cut into blocks of exactly `maxLength` (HF run_clm's `group_texts`); the
 *   incomplete last block is dropped unless it is the only one.
 * - `instruction`: frame prefix + prompt (masked) + output + EOS + frame suffix (targets); cut at
 *   `maxLength`; a row left with no target is dropped.
 * - `chat`: the chat template's rendering; assistant turns are targets, the rest masked.
 * - `classification`: frame prefix + template before `{text}` + text + template after + frame
 *   suffix, with the text (only) shortened to fit; no targets, unless label words are given: then
 *   the label's word + EOS follow the prompt as the only targets.
 *
 * Each piece is encoded on its own without special tokens, so the masked positions are exact.
 * @throws UserError for a label not in the list (pointer `/labels`) or a template longer than `maxLength`.
 */
export function tokenizeRows(rows: ShapeRow[], opts: TokenizeOptions): { examples: TokenizedExample[]; summary: SplitSummary } {
  const tok = opts.tokenizer;
  const frame = specialFrame(tok);
  const eos = tok.eosTokenId;
  const max = opts.maxLength;
  const locate = opts.locate ?? ((r: number) => `row ${r}`);
  const enc = (s: string) => (s === '' ? [] : tok.encode(s, { addSpecialTokens: false }));
  const endIds = (): number[] => {
    const tail = [...frame.suffix];
    if (eos !== undefined && tail[tail.length - 1] !== eos) tail.unshift(eos);
    return tail;
  };
  const examples: TokenizedExample[] = [];
  let truncated = 0;
  let dropped = 0;
  let packingRemainder: number | undefined;
  const push = (ids: number[], labels: number[], promptLength: number, row: number, label?: number) => {
    if (ids.length > max) {
      truncated++;
      ids = ids.slice(0, max);
      labels = labels.slice(0, max);
      promptLength = Math.min(promptLength, max);
    }
    const ex: TokenizedExample = { inputIds: Int32Array.from(ids), labels: Int32Array.from(labels), promptLength, row };
    if (label !== undefined) ex.label = label;
    examples.push(ex);
  };

  if (opts.shape === 'text' && opts.packing) {
    const stream: number[] = [];
    for (let r = 0; r < rows.length; r++) {
      const row = rows[r] as Extract<ShapeRow, { shape: 'text' }>;
      if (row.text === '') { dropped++; continue; }
      for (const id of concat([frame.prefix, enc(row.text), endIds()])) stream.push(id);
    }
    const full = Math.floor(stream.length / max);
    const blocks = full === 0 && stream.length > 0 ? 1 : full;
    for (let b = 0; b < blocks; b++) {
      const ids = Int32Array.from(stream.slice(b * max, (b + 1) * max));
      examples.push({ inputIds: ids, labels: Int32Array.from(ids), promptLength: 0, row: -1 });
    }
    packingRemainder = full === 0 ? 0 : stream.length - full * max;
  } else if (opts.shape === 'classification') {
    const names = opts.labelNames ?? [];
    const { before, after } = splitTextTemplate(opts.textTemplate);
    const head = concat([frame.prefix, enc(before)]);
    const tail = concat([enc(after), opts.labelWords ? [] : frame.suffix]);
    const words = opts.labelWords?.map((w) => enc(w));
    const end = opts.labelWords ? endIds() : [];
    const longestWord = words ? Math.max(...words.map((w) => w.length)) : 0;
    const budget = max - head.length - tail.length - longestWord - end.length;
    if (budget < 1) {
      throw new UserError(`max_length ${max} leaves no room for the text: the template${words ? ', the longest label word' : ''} and special tokens take ${max - budget} tokens`, {
        pointer: '/max_length', hint: 'raise max_length or shorten text_template',
      });
    }
    for (let r = 0; r < rows.length; r++) {
      const row = rows[r] as Extract<ShapeRow, { shape: 'classification' }>;
      const id = labelId(row.label, names);
      if (id < 0) {
        throw new UserError(`${locate(r)}: label ${JSON.stringify(row.label)} is not one of the labels [${names.join(', ')}]`, {
          pointer: '/labels', hint: 'add it to "labels", or fix the row',
        });
      }
      let text = enc(row.text);
      if (text.length > budget) { text = text.slice(0, budget); truncated++; }
      const prompt = concat([head, text, tail]);
      const target = words ? concat([words[id], end]) : [];
      const ids = concat([prompt, target]);
      const labels = concat([new Array(prompt.length).fill(IGNORE_INDEX), target]);
      examples.push({ inputIds: Int32Array.from(ids), labels: Int32Array.from(labels), promptLength: prompt.length, row: r, label: id });
    }
  } else {
    for (let r = 0; r < rows.length; r++) {
      const row = rows[r];
      let ids: number[];
      let labels: number[];
      let promptLength: number;
      if (row.shape === 'text') {
        if (row.text === '') { dropped++; continue; }
        ids = concat([frame.prefix, enc(row.text), endIds()]);
        labels = ids.slice();
        promptLength = 0;
      } else if (row.shape === 'instruction') {
        const prompt = concat([frame.prefix, enc(renderInstructionPrompt(opts.template, row.instruction, row.input))]);
        const response = concat([enc(row.output), endIds()]);
        ids = concat([prompt, response]);
        labels = concat([new Array(prompt.length).fill(IGNORE_INDEX), response]);
        promptLength = prompt.length;
      } else if (row.shape === 'chat') {
        let segs;
        try {
          segs = chatSegments(tok, row.messages);
        } catch (e) {
          throw new UserError(`${locate(r)}: cannot render the conversation with the tokenizer's chat template: ${(e as Error).message}`, {
            pointer: '/shape', hint: 'the chat shape needs a tokenizer whose tokenizer_config.json has a "chat_template"',
          });
        }
        ids = [];
        labels = [];
        promptLength = 0;
        for (const s of segs) {
          const part = enc(s.text);
          if (s.target) promptLength = ids.length;
          for (const id of part) { ids.push(id); labels.push(s.target ? id : IGNORE_INDEX); }
        }
      } else {
        throw new Error(`row ${r} has shape ${row.shape}, expected ${opts.shape}`);
      }
      if (labels.slice(0, max).every((l) => l === IGNORE_INDEX)) {
        dropped++;
        continue;
      }
      push(ids, labels, promptLength, r);
    }
  }
  return { examples, summary: summarize(rows.length, examples, truncated, dropped, packingRemainder, opts.labelNames) };
}

function summarize(rows: number, examples: TokenizedExample[], truncated: number, dropped: number, packingRemainder: number | undefined, labelNames?: string[]): SplitSummary {
  let tokens = 0;
  let targetTokens = 0;
  let maxTokens = 0;
  for (const e of examples) {
    tokens += e.inputIds.length;
    maxTokens = Math.max(maxTokens, e.inputIds.length);
    for (const l of e.labels) if (l !== IGNORE_INDEX) targetTokens++;
  }
  const s: SplitSummary = { rows, examples: examples.length, truncated, dropped, tokens, targetTokens, maxTokens, meanTokens: examples.length ? tokens / examples.length : 0 };
  if (packingRemainder !== undefined) s.packingRemainder = packingRemainder;
  if (labelNames) {
    s.labelCounts = Object.fromEntries(labelNames.map((n) => [n, 0]));
    for (const e of examples) if (e.label !== undefined) s.labelCounts[labelNames[e.label]]++;
  }
  return s;
}
