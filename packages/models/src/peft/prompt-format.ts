/**
 * The prompt format an adapter (or a fine-tuned model) was trained with, stored beside it as
 * `prompt_format.json`, so that `generate` and `classify` give it text the way training did and
 * name its classes. HF PEFT and transformers ignore the file; it is peftkit's own.
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { UserError } from '@peftkit/core';

/** File name of the prompt format inside an adapter or model folder. */
export const PROMPT_FORMAT_FILE = 'prompt_format.json';

/** How training turned a row into a prompt (the dataset step's shape and templates). */
export interface PromptFormat {
  /** The dataset shape it was trained on. */
  shape: 'text' | 'instruction' | 'chat' | 'classification';
  /** classification: the template around the text, with one `{text}`, e.g. `"{text}\nThis mail is"`. */
  text_template?: string;
  /** instruction: the prompt for an instruction without input, with `{instruction}`. */
  instruction_template?: string;
  /** classification: the class names, index = class id (HF's `id2label`). */
  labels?: string[];
  /** classification by a causal LM: the word that follows the prompt for each class (e.g. `" spam"`). */
  label_words?: string[];
}

/**
 * Writes `format` as `<folder>/prompt_format.json` (the folder is being written atomically by the
 * caller, so a plain write is enough).
 * @returns the file name written.
 */
export function writePromptFormat(folder: string, format: PromptFormat): string {
  writeFileSync(join(folder, PROMPT_FORMAT_FILE), JSON.stringify(format, null, 2) + '\n');
  return PROMPT_FORMAT_FILE;
}

/**
 * Reads `<folder>/prompt_format.json` when there is one.
 * @throws UserError naming the file when it is not valid JSON or has no known `shape`.
 */
export function readPromptFormat(folder: string): PromptFormat | undefined {
  const file = join(folder, PROMPT_FORMAT_FILE);
  if (!existsSync(file)) return undefined;
  let f: PromptFormat;
  try {
    f = JSON.parse(readFileSync(file, 'utf8'));
  } catch (e) {
    throw new UserError(`${file}: not valid JSON (${(e as Error).message})`, { file, hint: 'fix or delete the file; it only holds the prompt template the adapter was trained with' });
  }
  if (!['text', 'instruction', 'chat', 'classification'].includes(f?.shape)) {
    throw new UserError(`${file}: /shape must be text, instruction, chat or classification`, { file, pointer: '/shape' });
  }
  return f;
}

/**
 * `text` as training saw it: inside the classification template, or as the instruction of the
 * instruction template; other shapes (text, chat) pass it through.
 */
export function applyPromptFormat(format: PromptFormat | undefined, text: string): string {
  if (format?.shape === 'classification' && format.text_template) return format.text_template.split('{text}').join(text);
  if (format?.shape === 'instruction' && format.instruction_template) return format.instruction_template.split('{instruction}').join(text);
  return text;
}
