import type { ChatMessage, Tokenizer } from '@peftkit/models';

/**
 * A character-level {@link Tokenizer} for tests: one id per character, with GPT-2's
 * `<|endoftext|>` and ChatML's `<|im_start|>` / `<|im_end|>` as special tokens.
 *
 * Ids: 0 `<|endoftext|>` (EOS), 1 `<|im_start|>`, 2 `<|im_end|>`, 3 `<s>` (BOS), 4 `<pad>`,
 * then 5 + code point for code points 0..255; other characters become `?`.
 */
export class CharTokenizer implements Tokenizer {
  static readonly SPECIALS = ['<|endoftext|>', '<|im_start|>', '<|im_end|>', '<s>', '<pad>'];
  readonly vocabSize = 5 + 256;
  readonly eosTokenId = 0;
  readonly bosTokenId?: number;
  readonly padTokenId?: number;
  readonly chatTemplate?: string;

  /**
   * @param opts.bos add `<s>` in front when `addSpecialTokens` (as Llama does); default false.
   * @param opts.pad have a pad token (`<pad>`, id 4); default false, so batches pad with EOS.
   * @param opts.chat have a (ChatML) chat template; default true.
   */
  constructor(private readonly opts: { bos?: boolean; pad?: boolean; chat?: boolean } = {}) {
    if (opts.bos) this.bosTokenId = 3;
    if (opts.pad) this.padTokenId = 4;
    if (opts.chat ?? true) this.chatTemplate = 'chatml';
  }

  /** The id of one character (test helper). */
  static id(ch: string): number {
    const c = ch.codePointAt(0)!;
    return 5 + (c < 256 ? c : 63);
  }

  encode(text: string, options: { addSpecialTokens?: boolean } = {}): number[] {
    const ids: number[] = options.addSpecialTokens !== false && this.opts.bos ? [3] : [];
    let i = 0;
    outer: while (i < text.length) {
      for (let s = 0; s < CharTokenizer.SPECIALS.length; s++) {
        if (text.startsWith(CharTokenizer.SPECIALS[s], i)) {
          ids.push(s);
          i += CharTokenizer.SPECIALS[s].length;
          continue outer;
        }
      }
      const ch = String.fromCodePoint(text.codePointAt(i)!);
      ids.push(CharTokenizer.id(ch));
      i += ch.length;
    }
    return ids;
  }

  decode(ids: number[], options: { skipSpecialTokens?: boolean } = {}): string {
    return ids.map((id) => (id < 5 ? (options.skipSpecialTokens ? '' : CharTokenizer.SPECIALS[id]) : String.fromCodePoint(id - 5))).join('');
  }

  /** ChatML: `<|im_start|>{role}\n{content}<|im_end|>\n` per message; the generation prompt opens an assistant turn. */
  applyChatTemplate(messages: ChatMessage[], options: { addGenerationPrompt?: boolean } = {}): string {
    if (!this.chatTemplate) throw new Error('this tokenizer has no chat template');
    return messages.map((m) => `<|im_start|>${m.role}\n${m.content}<|im_end|>\n`).join('') + (options.addGenerationPrompt ? '<|im_start|>assistant\n' : '');
  }
}
