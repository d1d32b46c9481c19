import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Tokenizer as JsTokenizer } from '@huggingface/tokenizers';
import { writeFileAtomic, writeJsonAtomic } from '../../packages/core/src/runtime/atomic.js';

/** The one special token: GPT-2's, used as BOS, EOS, UNK and PAD. */
export const EOT = '<|endoftext|>';
export const MANIFEST = 'train-tokenizer.manifest.json';

/** Options of {@link trainTokenizer}. */
export interface TrainTokenizerOptions {
  /** JSONL files whose `textField` is the training text. */
  input: string[];
  /** Output folder: tokenizer.json, tokenizer_config.json, special_tokens_map.json, vocab.json, merges.txt. */
  out: string;
  /** Vocabulary size, special token included (default 4096); at least 257 (the 256 bytes + EOT). */
  vocabSize?: number;
  /** Field of each JSONL record holding the text (default `text`). */
  textField?: string;
  /** `model_max_length` written to tokenizer_config.json (default 1024). */
  modelMaxLength?: number;
  /** Documents re-encoded by both the native and the pure-TS tokenizer as a check (default 200). */
  checkDocs?: number;
  /** Retrain even when the manifest says the output is up to date. */
  force?: boolean;
  log?: (line: string) => void;
}

/** What a run produced. */
export interface TrainTokenizerReport {
  skipped: boolean;
  vocabSize: number;
  merges: number;
  /** Documents checked: same ids from both implementations and decode(encode(text)) === text. */
  checked: number;
  /** Mean characters per token over the checked documents. */
  charsPerToken: number;
}

/**
 * GPT-2's byte-to-character table (`bytes_to_unicode` in openai/gpt-2 `encoder.py`): printable
 * latin-1 bytes map to themselves, the others to U+0100 onwards. Index = byte; the order of the
 * returned list (printable bytes first) is GPT-2's vocab order for ids 0 to 255.
 */
export function byteAlphabet(): { byteToChar: string[]; order: string[] } {
  const bs: number[] = [];
  for (let b = 33; b <= 126; b++) bs.push(b);
  for (let b = 161; b <= 172; b++) bs.push(b);
  for (let b = 174; b <= 255; b++) bs.push(b);
  const cs = [...bs];
  let n = 0;
  for (let b = 0; b < 256; b++) {
    if (!bs.includes(b)) {
      bs.push(b);
      cs.push(256 + n++);
    }
  }
  const byteToChar: string[] = new Array(256);
  bs.forEach((b, i) => (byteToChar[b] = String.fromCodePoint(cs[i])));
  return { byteToChar, order: bs.map((b) => byteToChar[b]) };
}

const sha256 = (s: string | Buffer) => createHash('sha256').update(s).digest('hex');

function readTexts(files: string[], field: string): string[] {
  const out: string[] = [];
  for (const f of files) {
    readFileSync(f, 'utf8').split('\n').forEach((line, i) => {
      if (line.trim() === '') return;
      let rec: unknown;
      try {
        rec = JSON.parse(line);
      } catch (e) {
        throw new Error(`${f}: line ${i + 1}: invalid JSON (${(e as Error).message})`);
      }
      const t = (rec as Record<string, unknown>)?.[field];
      if (typeof t !== 'string') throw new Error(`${f}: line ${i + 1}: field "${field}" must be a string`);
      out.push(t);
    });
  }
  return out;
}

/**
 * Trains a byte-level BPE tokenizer (GPT-2 style) with HF's native `tokenizers` and writes it in
 * the files transformers reads.
 *
 * The Node bindings (0.23) train with the model's default `BpeTrainer` only (vocab 30,000, no
 * special tokens, alphabet = characters seen) and expose no trainer options. BPE training is
 * greedy, so the first k merges of a longer run are the merges of a run stopped at k: this takes
 * the first `vocabSize - 257` merges, puts the full 256-byte alphabet in GPT-2's order first (so
 * no byte is ever unknown) and `<|endoftext|>` last, as in GPT-2's vocab.
 *
 * Checks the result: the native and the pure-TS (@huggingface/tokenizers) readers give the same
 * ids on sample documents, and both decode them back to the exact text.
 * @throws Error when the inputs are unreadable, the vocab size is out of range, or the check fails.
 */
export async function trainTokenizer(o: TrainTokenizerOptions): Promise<TrainTokenizerReport> {
  const log = o.log ?? (() => {});
  const vocabSize = o.vocabSize ?? 4096;
  const field = o.textField ?? 'text';
  const modelMaxLength = o.modelMaxLength ?? 1024;
  if (!Number.isInteger(vocabSize) || vocabSize < 257 || vocabSize > 30000) throw new Error(`vocab size must be an integer from 257 (256 bytes + ${EOT}) to 30000, got ${vocabSize}`);

  const here = dirname(fileURLToPath(import.meta.url));
  const source = readdirSync(here).filter((f) => f.endsWith('.ts') && !f.endsWith('.test.ts')).sort().map((f) => readFileSync(join(here, f), 'utf8'));
  const hash = sha256([JSON.stringify({ vocabSize, field, modelMaxLength }), ...source, ...o.input.map((f) => sha256(readFileSync(f)))].join('\u0000'));
  const manifestPath = join(o.out, MANIFEST);
  if (!o.force && existsSync(manifestPath)) {
    const m = JSON.parse(readFileSync(manifestPath, 'utf8'));
    if (m.inputsHash === hash && Object.entries(m.outputs as Record<string, string>).every(([f, h]) => existsSync(join(o.out, f)) && sha256(readFileSync(join(o.out, f))) === h)) {
      log(`up to date: ${o.out}; use --force to retrain`);
      return { ...m.report, skipped: true };
    }
  }

  const texts = readTexts(o.input, field);
  if (!texts.length) throw new Error(`no text in ${o.input.join(', ')}`);
  const tmp = mkdtempSync(join(tmpdir(), 'peftkit-tokenizer-'));
  let trained: { model: { vocab: Record<string, number>; merges: (string | [string, string])[] } };
  try {
    const native = createRequire(import.meta.url)('tokenizers') as typeof import('tokenizers');
    const corpus = join(tmp, 'corpus.txt');
    writeFileSync(corpus, texts.join('\n') + '\n');
    const t = new native.Tokenizer(native.BPE.empty());
    // GPT-2's pre-tokenizer: no prefix space, GPT-2's split regex.
    t.setPreTokenizer(native.byteLevelPreTokenizer(false, true));
    t.train([corpus]);
    t.save(join(tmp, 'trained.json'));
    trained = JSON.parse(readFileSync(join(tmp, 'trained.json'), 'utf8'));
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }

  const { order } = byteAlphabet();
  const vocab: Record<string, number> = {};
  order.forEach((c, i) => (vocab[c] = i));
  const merges: [string, string][] = [];
  let size = 256;
  for (const m of trained.model.merges) {
    if (size >= vocabSize - 1) break;
    const [a, b] = typeof m === 'string' ? (m.split(' ') as [string, string]) : m;
    const tok = a + b;
    if (!(a in vocab) || !(b in vocab) || tok in vocab) continue;
    vocab[tok] = size++;
    merges.push([a, b]);
  }
  vocab[EOT] = size++;
  if (size < vocabSize) log(`the corpus gave only ${merges.length} merges: vocab size ${size}, not ${vocabSize}`);

  const special = { id: vocab[EOT], content: EOT, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true };
  const byteLevel = { add_prefix_space: false, trim_offsets: true, use_regex: true };
  const tokenizerJson = {
    version: '1.0', truncation: null, padding: null, added_tokens: [special], normalizer: null,
    pre_tokenizer: { type: 'ByteLevel', ...byteLevel },
    post_processor: { type: 'ByteLevel', ...byteLevel, trim_offsets: false },
    decoder: { type: 'ByteLevel', ...byteLevel },
    model: { type: 'BPE', dropout: null, unk_token: null, continuing_subword_prefix: null, end_of_word_suffix: null, fuse_unk: false, byte_fallback: false, ignore_merges: false, vocab, merges },
  };
  const { id: _id, ...specialFields } = special;
  const tokenizerConfig = {
    add_bos_token: false, add_prefix_space: false,
    added_tokens_decoder: { [String(special.id)]: specialFields },
    bos_token: EOT, clean_up_tokenization_spaces: false, eos_token: EOT, errors: 'replace',
    model_max_length: modelMaxLength, pad_token: EOT, tokenizer_class: 'GPT2Tokenizer', unk_token: EOT,
  };
  const files: Record<string, string> = {
    'tokenizer.json': JSON.stringify(tokenizerJson, null, 2) + '\n',
    'tokenizer_config.json': JSON.stringify(tokenizerConfig, null, 2) + '\n',
    'special_tokens_map.json': JSON.stringify({ bos_token: EOT, eos_token: EOT, pad_token: EOT, unk_token: EOT }, null, 2) + '\n',
    'vocab.json': JSON.stringify(vocab) + '\n',
    'merges.txt': '#version: 0.2\n' + merges.map(([a, b]) => `${a} ${b}`).join('\n') + '\n',
  };

  // Check before writing: both readers agree and round-trip.
  const native = createRequire(import.meta.url)('tokenizers') as typeof import('tokenizers');
  const nt = native.Tokenizer.fromString(files['tokenizer.json']);
  const js = new JsTokenizer(tokenizerJson, tokenizerConfig);
  const sample = texts.slice(0, o.checkDocs ?? 200);
  let chars = 0;
  let tokens = 0;
  for (const [i, text] of sample.entries()) {
    const ids = js.encode(text, { add_special_tokens: false }).ids;
    const back = js.decode(ids, { skip_special_tokens: false, clean_up_tokenization_spaces: false });
    if (back !== text) throw new Error(`round trip failed on document ${i}: ${JSON.stringify(text.slice(0, 80))} came back as ${JSON.stringify(back.slice(0, 80))}`);
    const nids = (await nt.encode(text, null, { addSpecialTokens: false })).getIds();
    if ((nids.length !== ids.length || nids.some((x, k) => x !== ids[k]))) throw new Error(`document ${i}: the native and the pure-TS tokenizers disagree`);
    chars += text.length;
    tokens += ids.length;
  }
  for (const [f, content] of Object.entries(files)) writeFileAtomic(join(o.out, f), content);
  const report: TrainTokenizerReport = { skipped: false, vocabSize: size, merges: merges.length, checked: sample.length, charsPerToken: tokens ? chars / tokens : 0 };
  writeJsonAtomic(manifestPath, {
    tool: 'tools/train-tokenizer', inputsHash: hash, createdAt: new Date().toISOString(), report,
    outputs: Object.fromEntries(Object.entries(files).map(([f, c]) => [f, sha256(c)])),
  });
  log(`wrote ${o.out}: vocab ${size} (${merges.length} merges + 256 bytes + ${EOT}), ${report.charsPerToken.toFixed(2)} characters per token over ${sample.length} documents`);
  return report;
}
