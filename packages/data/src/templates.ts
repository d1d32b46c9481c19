/**
 * Prompt templates for the `instruction` and `classification` shapes.
 *
 * Placeholders are `{instruction}`, `{input}` (instruction) and `{text}` (classification); any other
 * text, braces included, is kept as written.
 */

/** An instruction prompt: one form for rows with an input (context), one for rows without. */
export interface InstructionTemplate {
  /** Prompt for rows with a non-empty input; uses `{instruction}` and `{input}`. */
  prompt_input: string;
  /** Prompt for rows without input; uses `{instruction}`. */
  prompt_no_input: string;
}

/**
 * Built-in instruction templates.
 *
 * `alpaca` is `PROMPT_DICT` of tatsu-lab/stanford_alpaca `train.py`, with a newline after
 * `### Response:` as Axolotl's alpaca prompter writes it; the response (the row's output) follows
 * directly, then EOS. `plain` is the instruction, a newline, the input and a newline.
 */
export const INSTRUCTION_TEMPLATES: Record<'alpaca' | 'plain', InstructionTemplate> = {
  alpaca: {
    prompt_input:
      'Below is an instruction that describes a task, paired with an input that provides further context. ' +
      'Write a response that appropriately completes the request.\n\n' +
      '### Instruction:\n{instruction}\n\n### Input:\n{input}\n\n### Response:\n',
    prompt_no_input:
      'Below is an instruction that describes a task. ' +
      'Write a response that appropriately completes the request.\n\n' +
      '### Instruction:\n{instruction}\n\n### Response:\n',
  },
  plain: {
    prompt_input: '{instruction}\n{input}\n',
    prompt_no_input: '{instruction}\n',
  },
};

/** Resolves a template setting (a built-in name or a custom pair). */
export function resolveInstructionTemplate(t: 'alpaca' | 'plain' | InstructionTemplate | undefined): InstructionTemplate {
  if (t === undefined) return INSTRUCTION_TEMPLATES.alpaca;
  return typeof t === 'string' ? INSTRUCTION_TEMPLATES[t] : t;
}

/** Replaces `{name}` placeholders with values; unknown placeholders stay as written. */
export function fill(template: string, values: Record<string, string>): string {
  return template.replace(/\{([a-z_]+)\}/g, (m, k: string) => (k in values ? values[k] : m));
}

/** The prompt of one instruction row (empty input: `prompt_no_input`). */
export function renderInstructionPrompt(t: InstructionTemplate, instruction: string, input: string): string {
  return input.trim() === '' ? fill(t.prompt_no_input, { instruction }) : fill(t.prompt_input, { instruction, input });
}

/**
 * Splits a classification template at its one `{text}` placeholder.
 * @throws Error when the template has no `{text}` or more than one.
 */
export function splitTextTemplate(template: string): { before: string; after: string } {
  const parts = template.split('{text}');
  if (parts.length !== 2) throw new Error(`the text template must contain "{text}" exactly once, got ${JSON.stringify(template)}`);
  return { before: parts[0], after: parts[1] };
}
