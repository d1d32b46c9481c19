import { existsSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { UserError } from '@peftkit/core';
import { HfTokenizer } from './hf-tokenizer.js';
import { gpt2TokenizerJson, wordPieceTokenizerJson, type TokenizerJson } from './convert.js';

/** Files a tokenizer folder may hold, in the order transformers looks for them. */
export const TOKENIZER_FILES = [
  'tokenizer.json', 'vocab.json', 'merges.txt', 'vocab.txt',
  'tokenizer_config.json', 'special_tokens_map.json', 'chat_template.jinja',
] as const;

/** True when `folder` holds a tokenizer in one of the forms {@link loadTokenizer} reads. */
export function hasTokenizer(folder: string): boolean {
  const has = (f: string) => existsSync(join(folder, f));
  return has('tokenizer.json') || (has('vocab.json') && has('merges.txt')) || has('vocab.txt');
}

function readJson(file: string): Record<string, unknown> {
  let value: unknown;
  try {
    value = JSON.parse(readFileSync(file, 'utf8'));
  } catch (e) {
    throw new UserError(`${file}: not valid JSON (${(e as Error).message})`, { file, hint: 're-download or re-save the tokenizer' });
  }
  if (!value || typeof value !== 'object' || Array.isArray(value)) throw new UserError(`${file}: expected a JSON object`, { file });
  return value as Record<string, unknown>;
}

/**
 * Reads the tokenizer in `folder`, as `AutoTokenizer.from_pretrained` does: `tokenizer.json` when
 * present, else GPT-2's `vocab.json` + `merges.txt`, else BERT's `vocab.txt` (the older forms are
 * converted to the same tokenizer.json object, see `convert.ts`). Special tokens come from
 * `tokenizer_config.json`, falling back to `special_tokens_map.json`; the chat template from
 * `chat_template.jinja` or tokenizer_config.json's `chat_template`.
 * @throws UserError naming the folder when it has no tokenizer, or the file that is invalid.
 */
export function loadTokenizer(folder: string): HfTokenizer {
  if (!existsSync(folder) || !statSync(folder).isDirectory()) throw new UserError(`tokenizer folder not found: ${folder}`, { file: folder });
  const files = new Map<string, string>();
  const read = (name: string): string | undefined => {
    const p = join(folder, name);
    if (!existsSync(p)) return undefined;
    const text = readFileSync(p, 'utf8');
    if (text.startsWith('version https://git-lfs')) {
      throw new UserError(`${p}: is a Git LFS pointer, not the file itself: run \`git lfs pull\` in its repository`, { file: p, hint: 'git lfs pull' });
    }
    files.set(name, text);
    return text;
  };
  const parse = (name: string): Record<string, unknown> | undefined => (read(name) === undefined ? undefined : readJson(join(folder, name)));

  const map = parse('special_tokens_map.json') ?? {};
  const config = { ...map, ...stripNulls(parse('tokenizer_config.json') ?? {}) };
  const chatTemplate = read('chat_template.jinja');

  let json: TokenizerJson;
  const tj = parse('tokenizer.json');
  if (tj) {
    if (!tj.model || typeof tj.model !== 'object') throw new UserError(`${join(folder, 'tokenizer.json')}: no "model" object; not a tokenizers file`, { file: join(folder, 'tokenizer.json'), pointer: '/model' });
    json = { added_tokens: [], normalizer: null, pre_tokenizer: null, post_processor: null, decoder: null, ...tj } as unknown as TokenizerJson;
  } else if (existsSync(join(folder, 'vocab.json')) && existsSync(join(folder, 'merges.txt'))) {
    const vocab = parse('vocab.json') as Record<string, number>;
    json = gpt2TokenizerJson(vocab, read('merges.txt')!, config);
  } else if (existsSync(join(folder, 'vocab.txt'))) {
    try {
      json = wordPieceTokenizerJson(read('vocab.txt')!, config);
    } catch (e) {
      throw new UserError(`${join(folder, 'vocab.txt')}: ${(e as Error).message}`, { file: join(folder, 'vocab.txt') });
    }
  } else {
    throw new UserError(`${folder}: no tokenizer found: expected tokenizer.json, vocab.json + merges.txt (GPT-2 BPE) or vocab.txt (WordPiece)`, { file: folder });
  }
  try {
    return new HfTokenizer(json, config, { chatTemplate, files });
  } catch (e) {
    throw new UserError(`${folder}: the tokenizer cannot be built: ${(e as Error).message}`, { file: folder });
  }
}

/** tokenizer_config.json writes `"pad_token": null` for "none": such keys must not hide special_tokens_map.json's. */
function stripNulls(o: Record<string, unknown>): Record<string, unknown> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== null));
}
