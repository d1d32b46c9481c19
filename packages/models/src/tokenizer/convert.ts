/**
 * The older ("slow") tokenizer files as the `tokenizer.json` object that HF's fast tokenizers would
 * build from them, so one library (@huggingface/tokenizers) runs every form. The pipelines follow
 * transformers' `convert_slow_tokenizer.py`: `GPT2Converter` for vocab.json + merges.txt (byte-level
 * BPE) and `BertConverter` for vocab.txt (WordPiece).
 */

/** An entry of tokenizer.json's `added_tokens`. */
export interface AddedTokenJson {
  id: number;
  content: string;
  single_word: boolean;
  lstrip: boolean;
  rstrip: boolean;
  normalized: boolean;
  special: boolean;
}

/** tokenizer.json as the Rust `tokenizers` library writes it (the parts read here). */
export interface TokenizerJson {
  version?: string;
  added_tokens: AddedTokenJson[];
  normalizer: unknown;
  pre_tokenizer: unknown;
  post_processor: unknown;
  decoder: unknown;
  model: { type?: string; vocab: Record<string, number> | [string, number][]; merges?: string[] | [string, string][]; unk_token?: string | null; [k: string]: unknown };
  [k: string]: unknown;
}

/** A special token named in tokenizer_config.json: a string, or an AddedToken object `{content, ...}`. */
export function tokenContent(v: unknown): string | undefined {
  if (typeof v === 'string') return v;
  if (v && typeof v === 'object' && typeof (v as { content?: unknown }).content === 'string') return (v as { content: string }).content;
  return undefined;
}

/** tokenizer_config.json's `added_tokens_decoder` (`{"50256": {content, ...}}`) as tokenizer.json entries. */
export function addedTokensFromConfig(config: Record<string, unknown>): AddedTokenJson[] {
  const dec = (config.added_tokens_decoder ?? {}) as Record<string, Partial<AddedTokenJson>>;
  return Object.entries(dec)
    .map(([id, t]) => ({
      id: Number(id),
      content: String(t.content),
      single_word: t.single_word ?? false,
      lstrip: t.lstrip ?? false,
      rstrip: t.rstrip ?? false,
      special: t.special ?? false,
      normalized: t.normalized ?? !(t.special ?? false),
    }))
    .filter((t) => Number.isInteger(t.id) && t.content !== 'undefined')
    .sort((a, b) => a.id - b.id);
}

/** Special tokens of tokenizer_config.json not already in `added`, added (special) when the vocab has them. */
function specialsFromConfig(config: Record<string, unknown>, vocab: Record<string, number>, added: AddedTokenJson[], normalized: boolean): AddedTokenJson[] {
  const out = [...added];
  const names = ['bos_token', 'eos_token', 'unk_token', 'sep_token', 'pad_token', 'cls_token', 'mask_token'];
  const extra = (config.additional_special_tokens as unknown[] | undefined) ?? [];
  for (const c of [...names.map((n) => tokenContent(config[n])), ...extra.map(tokenContent)]) {
    if (c === undefined || out.some((t) => t.content === c) || vocab[c] === undefined) continue;
    out.push({ id: vocab[c], content: c, single_word: false, lstrip: false, rstrip: false, normalized, special: true });
  }
  return out.sort((a, b) => a.id - b.id);
}

/**
 * GPT-2 byte-level BPE from `vocab.json` and `merges.txt` (transformers' `GPT2Converter`):
 * ByteLevel pre-tokenizer (`add_prefix_space` from the config, default false), BPE model, ByteLevel
 * decoder; BOS prepended by a template only when the config sets `add_bos_token`. Unlike the fast
 * converter, `unk_token` is kept on the model when the vocab has it, as the slow tokenizer maps
 * pieces missing from the vocab to it.
 * @param mergesText - merges.txt contents: an optional `#version` line, then `left right` per line.
 */
export function gpt2TokenizerJson(vocab: Record<string, number>, mergesText: string, config: Record<string, unknown>): TokenizerJson {
  const merges = mergesText
    .split('\n')
    .map((l) => l.replace(/\r$/, ''))
    .filter((l, i) => l.trim() !== '' && !(i === 0 && l.startsWith('#version')));
  const unk = tokenContent(config.unk_token);
  const addPrefixSpace = config.add_prefix_space === true;
  const added = specialsFromConfig(config, vocab, addedTokensFromConfig(config), true);
  const bos = tokenContent(config.bos_token);
  const byteLevel = { type: 'ByteLevel', add_prefix_space: addPrefixSpace, trim_offsets: true, use_regex: true };
  const postProcessor = config.add_bos_token === true && bos !== undefined && vocab[bos] !== undefined
    ? {
        type: 'TemplateProcessing',
        single: [{ SpecialToken: { id: bos, type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }],
        pair: [{ SpecialToken: { id: bos, type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }, { SpecialToken: { id: bos, type_id: 0 } }, { Sequence: { id: 'B', type_id: 1 } }],
        special_tokens: { [bos]: { id: bos, ids: [vocab[bos]], tokens: [bos] } },
      }
    : { ...byteLevel, trim_offsets: false };
  return {
    version: '1.0',
    added_tokens: added,
    normalizer: null,
    pre_tokenizer: byteLevel,
    post_processor: postProcessor,
    decoder: byteLevel,
    model: {
      type: 'BPE',
      dropout: null,
      unk_token: unk !== undefined && vocab[unk] !== undefined ? unk : null,
      continuing_subword_prefix: '',
      end_of_word_suffix: '',
      fuse_unk: false,
      byte_fallback: false,
      vocab,
      merges,
    },
  };
}

/**
 * BERT WordPiece from `vocab.txt` (one token per line, id = line number; transformers'
 * `BertConverter`): BertNormalizer (`do_lower_case`, `tokenize_chinese_chars`, `strip_accents` from
 * the config), BertPreTokenizer, `[CLS] $A [SEP]` / `[CLS] $A [SEP] $B [SEP]` post-processing,
 * WordPiece decoder with prefix `##`.
 * @throws Error when the vocab lacks the CLS, SEP or UNK token the config names.
 */
export function wordPieceTokenizerJson(vocabText: string, config: Record<string, unknown>): TokenizerJson {
  const vocab: Record<string, number> = {};
  const lines = vocabText.split('\n');
  if (lines[lines.length - 1] === '') lines.pop();
  lines.forEach((l, i) => {
    const tok = l.replace(/\r$/, '');
    if (!(tok in vocab)) vocab[tok] = i;
  });
  const cls = tokenContent(config.cls_token) ?? '[CLS]';
  const sep = tokenContent(config.sep_token) ?? '[SEP]';
  const unk = tokenContent(config.unk_token) ?? '[UNK]';
  for (const [what, t] of [['cls_token', cls], ['sep_token', sep], ['unk_token', unk]]) {
    if (vocab[t] === undefined) throw new Error(`vocab.txt has no ${what} "${t}"`);
  }
  const added = specialsFromConfig(config, vocab, addedTokensFromConfig(config), false);
  const spec = (t: string) => ({ SpecialToken: { id: t, type_id: 0 } });
  return {
    version: '1.0',
    added_tokens: added,
    normalizer: {
      type: 'BertNormalizer',
      clean_text: true,
      handle_chinese_chars: config.tokenize_chinese_chars ?? true,
      strip_accents: config.strip_accents ?? null,
      lowercase: config.do_lower_case ?? true,
    },
    pre_tokenizer: { type: 'BertPreTokenizer' },
    post_processor: {
      type: 'TemplateProcessing',
      single: [spec(cls), { Sequence: { id: 'A', type_id: 0 } }, spec(sep)],
      pair: [spec(cls), { Sequence: { id: 'A', type_id: 0 } }, spec(sep), { Sequence: { id: 'B', type_id: 1 } }, { SpecialToken: { id: sep, type_id: 1 } }],
      special_tokens: {
        [cls]: { id: cls, ids: [vocab[cls]], tokens: [cls] },
        [sep]: { id: sep, ids: [vocab[sep]], tokens: [sep] },
      },
    },
    decoder: { type: 'WordPiece', prefix: '##', cleanup: true },
    model: { type: 'WordPiece', unk_token: unk, continuing_subword_prefix: '##', max_input_chars_per_word: 100, vocab },
  };
}
