import { join } from 'node:path';
import { Tokenizer as LibTokenizer } from '@huggingface/tokenizers';
import { Template } from '@huggingface/jinja';
import { writeFileAtomic, writeJsonAtomic } from '@peftkit/core';
import type { ChatMessage, Tokenizer } from './tokenizer.js';
import { addedTokensFromConfig, tokenContent, type TokenizerJson } from './convert.js';

/** The special-token fields of tokenizer_config.json that chat templates see as variables. */
const SPECIAL_FIELDS = ['bos_token', 'eos_token', 'unk_token', 'pad_token', 'sep_token', 'cls_token', 'mask_token'] as const;

/**
 * A {@link Tokenizer} backed by @huggingface/tokenizers (a TypeScript port of HF's fast tokenizers)
 * running a `tokenizer.json` object, with tokenizer_config.json's special tokens and chat template
 * (rendered with @huggingface/jinja, as transformers' `apply_chat_template`).
 */
export class HfTokenizer implements Tokenizer {
  readonly vocabSize: number;
  readonly bosTokenId?: number;
  readonly eosTokenId?: number;
  readonly padTokenId?: number;
  readonly unkTokenId?: number;
  readonly chatTemplate?: string;
  /** Special tokens by tokenizer_config.json field (`bos_token` → `<|endoftext|>`), as strings. */
  readonly specialTokens: Partial<Record<(typeof SPECIAL_FIELDS)[number], string>>;
  private readonly lib: LibTokenizer;
  private readonly files?: Map<string, string>;

  /**
   * @param tokenizerJson - the tokenizer.json object (or one built by `convert.ts`).
   * @param config - tokenizer_config.json merged over special_tokens_map.json (`{}` when neither exists).
   * @param opts.chatTemplate - overrides `config.chat_template` (e.g. from chat_template.jinja).
   * @param opts.files - the files this tokenizer was read from (name → text), written back by {@link HfTokenizer.save}.
   * @throws Error when the library rejects the tokenizer.json (unknown model or component type).
   */
  constructor(
    private readonly tokenizerJson: TokenizerJson,
    readonly config: Record<string, unknown> = {},
    opts: { chatTemplate?: string; files?: Map<string, string> } = {},
  ) {
    this.files = opts.files;
    const chatTemplate = opts.chatTemplate;
    // Tokens that tokenizer_config.json adds beyond tokenizer.json, as transformers merges them.
    const added = [...tokenizerJson.added_tokens];
    for (const t of addedTokensFromConfig(config)) if (!added.some((a) => a.id === t.id)) added.push(t);
    const specials: Record<string, string> = {};
    for (const f of SPECIAL_FIELDS) {
      const c = tokenContent(config[f]);
      if (c !== undefined) specials[f] = c;
    }
    this.specialTokens = specials;
    const libConfig = { ...config, ...specials, additional_special_tokens: ((config.additional_special_tokens as unknown[]) ?? []).map(tokenContent).filter((x) => x !== undefined) };
    this.lib = new LibTokenizer({ ...tokenizerJson, added_tokens: added }, libConfig);
    let max = -1;
    for (const id of this.lib.get_vocab(true).values()) if (id > max) max = id;
    this.vocabSize = max + 1;
    this.bosTokenId = this.idOf(specials.bos_token);
    this.eosTokenId = this.idOf(specials.eos_token);
    this.padTokenId = this.idOf(specials.pad_token);
    this.unkTokenId = this.idOf(specials.unk_token);
    this.chatTemplate = chatTemplate ?? pickChatTemplate(config.chat_template);
  }

  private idOf(token: string | undefined): number | undefined {
    return token === undefined ? undefined : this.lib.token_to_id(token);
  }

  /**
   * Writes the tokenizer's files into `folder` (atomically), so that transformers'
   * `AutoTokenizer.from_pretrained(folder)` reads it: the files it was loaded from, unchanged, or,
   * for a tokenizer built in memory, tokenizer.json and tokenizer_config.json.
   * @returns the file names written.
   */
  save(folder: string): string[] {
    if (this.files?.size) {
      for (const [name, text] of this.files) writeFileAtomic(join(folder, name), text);
      return [...this.files.keys()];
    }
    writeJsonAtomic(join(folder, 'tokenizer.json'), this.tokenizerJson);
    writeJsonAtomic(join(folder, 'tokenizer_config.json'), { ...this.config, ...(this.chatTemplate ? { chat_template: this.chatTemplate } : {}) });
    return ['tokenizer.json', 'tokenizer_config.json'];
  }

  /** The id of a token string (added tokens included), or undefined. */
  tokenToId(token: string): number | undefined {
    return this.lib.token_to_id(token);
  }

  /** The token string of an id, or undefined. */
  idToToken(id: number): string | undefined {
    return this.lib.id_to_token(id);
  }

  /**
   * Text to ids. `addSpecialTokens` (default true) applies tokenizer.json's post-processor.
   * @throws Error when a piece has no id and the tokenizer has no unknown token.
   */
  encode(text: string, options: { addSpecialTokens?: boolean } = {}): number[] {
    const enc: { ids: (number | undefined)[]; tokens: string[] } = this.lib.encode(text, { add_special_tokens: options.addSpecialTokens ?? true });
    return enc.ids.map((id: number | undefined, i: number) => {
      if (id !== undefined) return id;
      if (this.unkTokenId !== undefined) return this.unkTokenId;
      throw new Error(`tokenizer: the piece ${JSON.stringify(enc.tokens[i])} of ${JSON.stringify(text)} is not in the vocabulary and there is no unknown token`);
    });
  }

  /** Ids to text; `skipSpecialTokens` drops special tokens. Cleans up spaces as `clean_up_tokenization_spaces` says. */
  decode(ids: number[], options: { skipSpecialTokens?: boolean } = {}): string {
    if (ids.length === 0) return '';
    return this.lib.decode(ids, { skip_special_tokens: options.skipSpecialTokens ?? false });
  }

  /**
   * Renders `messages` with the chat template, passing `add_generation_prompt`, the special tokens
   * (`bos_token`, `eos_token`, ...) and `raise_exception`, as transformers does.
   * @throws Error when the tokenizer has no chat template, or the template raises.
   */
  applyChatTemplate(messages: ChatMessage[], options: { addGenerationPrompt?: boolean } = {}): string {
    if (!this.chatTemplate) throw new Error('this tokenizer has no chat template (no "chat_template" in tokenizer_config.json and no chat_template.jinja)');
    return new Template(this.chatTemplate).render({
      ...this.specialTokens,
      additional_special_tokens: this.config.additional_special_tokens ?? [],
      messages,
      add_generation_prompt: options.addGenerationPrompt ?? false,
    });
  }
}

/** `chat_template` is a string, or (older transformers) a list of `{name, template}`: take `default`. */
function pickChatTemplate(v: unknown): string | undefined {
  if (typeof v === 'string') return v;
  if (Array.isArray(v)) {
    const named = v as { name?: string; template?: string }[];
    return (named.find((t) => t.name === 'default') ?? named[0])?.template;
  }
  return undefined;
}
