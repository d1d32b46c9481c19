/** A chat message as HF chat templates take it. */
export interface ChatMessage {
  role: 'system' | 'user' | 'assistant' | string;
  content: string;
}

/**
 * A text tokenizer with HF's special-token conventions. Implementations read `tokenizer.json`,
 * `vocab.json` + `merges.txt` or `vocab.txt`, plus `tokenizer_config.json`.
 */
export interface Tokenizer {
  /** Number of ids, added tokens included. */
  readonly vocabSize: number;
  readonly bosTokenId?: number;
  readonly eosTokenId?: number;
  readonly padTokenId?: number;
  /** The Jinja chat template from tokenizer_config.json, if any. */
  readonly chatTemplate?: string;
  /** Text to ids; `addSpecialTokens` (default true) adds what the tokenizer's post-processor adds (BOS, [CLS] ... [SEP]). */
  encode(text: string, options?: { addSpecialTokens?: boolean }): number[];
  /** Ids to text; `skipSpecialTokens` (default false) drops special tokens. */
  decode(ids: number[], options?: { skipSpecialTokens?: boolean }): string;
  /** Renders messages with the chat template. @throws Error when the tokenizer has no chat template. */
  applyChatTemplate(messages: ChatMessage[], options?: { addGenerationPrompt?: boolean }): string;
  /** The id of a token string (added tokens included), or undefined. Optional. */
  tokenToId?(token: string): number | undefined;
  /** The token string of an id, or undefined. Optional. */
  idToToken?(id: number): string | undefined;
  /** Writes the tokenizer's files into `folder` so that transformers can load them; returns the file names. Optional. */
  save?(folder: string): string[];
}
