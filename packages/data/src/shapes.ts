import { UserError } from '@peftkit/core';
import type { ChatMessage } from '@peftkit/models';
import type { LoadedTable } from './formats.js';
import type { DataShape } from './types.js';

/** Which column holds what (HF / Axolotl names by default). */
export interface ColumnNames {
  /** `text` and `classification`: the text. */
  text: string;
  /** `instruction`: the instruction, the optional input (context) and the expected output. */
  instruction: string;
  input: string;
  output: string;
  /** `chat`: an array of `{role, content}` (or ShareGPT's `{from, value}`); in CSV a JSON string. */
  messages: string;
  /** `classification`: the label (a name from the label list, or a class id). */
  label: string;
}

export const DEFAULT_COLUMNS: ColumnNames = { text: 'text', instruction: 'instruction', input: 'input', output: 'output', messages: 'messages', label: 'label' };

/** A row of each shape, checked and normalised. */
export type ShapeRow =
  | { shape: 'text'; text: string }
  | { shape: 'instruction'; instruction: string; input: string; output: string }
  | { shape: 'chat'; messages: ChatMessage[] }
  | { shape: 'classification'; text: string; label: string | number };

/** Columns each shape needs; `input` is optional for `instruction`. */
const NEEDS: Record<DataShape, (keyof ColumnNames)[]> = {
  text: ['text'],
  instruction: ['instruction', 'output'],
  chat: ['messages'],
  classification: ['text', 'label'],
};

// ShareGPT speaker names, as Axolotl maps them.
const SHAREGPT_ROLES: Record<string, string> = { human: 'user', user: 'user', gpt: 'assistant', assistant: 'assistant', system: 'system', tool: 'tool' };

/**
 * Reads the rows of a table as `shape`, checking types.
 * @throws UserError naming the file, the row's line or record and the field, when a column is
 *   missing (pointer `/columns/<field>`) or a value has the wrong type.
 */
export function readRows(loaded: LoadedTable, shape: DataShape, columns: ColumnNames): ShapeRow[] {
  const { table, file } = loaded;
  const have = table.columnNames();
  for (const field of NEEDS[shape]) {
    const col = columns[field];
    if (!have.includes(col)) {
      throw new UserError(`${file}: no column "${col}" (the "${field}" of shape "${shape}"); columns: ${have.join(', ') || 'none'}`, {
        file, pointer: `/columns/${field}`, hint: `name the column holding the ${field} with "columns": {"${field}": "<column>"}`,
      });
    }
  }
  const get = (field: keyof ColumnNames) => (have.includes(columns[field]) ? table.array(columns[field]) : undefined);
  const n = table.numRows();
  const rows: ShapeRow[] = new Array(n);
  const bad = (r: number, field: keyof ColumnNames, what: string, hint?: string): never => {
    throw new UserError(`${file}: ${loaded.locate(r)}: field "${columns[field]}" ${what}`, { file, pointer: `/columns/${field}`, hint });
  };
  const str = (r: number, field: keyof ColumnNames, v: unknown, optional = false): string => {
    if (typeof v === 'string') return v;
    if (optional && (v === null || v === undefined)) return '';
    return bad(r, field, `must be a string, got ${v === undefined ? 'nothing' : JSON.stringify(v)}`);
  };
  if (shape === 'text') {
    const text = get('text')!;
    for (let r = 0; r < n; r++) rows[r] = { shape, text: str(r, 'text', text[r]) };
  } else if (shape === 'instruction') {
    const ins = get('instruction')!;
    const inp = get('input');
    const out = get('output')!;
    for (let r = 0; r < n; r++) {
      rows[r] = { shape, instruction: str(r, 'instruction', ins[r]), input: str(r, 'input', inp?.[r], true), output: str(r, 'output', out[r]) };
    }
  } else if (shape === 'classification') {
    const text = get('text')!;
    const label = get('label')!;
    for (let r = 0; r < n; r++) {
      const v = label[r];
      let l: string | number;
      if (typeof v === 'string' && v !== '') l = v;
      else if (typeof v === 'number' && Number.isInteger(v)) l = v;
      else if (typeof v === 'bigint') l = Number(v);
      else if (typeof v === 'boolean') l = String(v);
      else return bad(r, 'label', `must be a label name or a class id, got ${v === undefined ? 'nothing' : JSON.stringify(v)}`);
      rows[r] = { shape, text: str(r, 'text', text[r]), label: l };
    }
  } else {
    const msgs = get('messages')!;
    for (let r = 0; r < n; r++) rows[r] = { shape, messages: readMessages(msgs[r], (what, hint) => bad(r, 'messages', what, hint)) };
  }
  return rows;
}

function readMessages(v: unknown, bad: (what: string, hint?: string) => never): ChatMessage[] {
  if (typeof v === 'string') {
    try {
      v = JSON.parse(v);
    } catch (e) {
      bad(`is text but not JSON (${(e as Error).message})`, 'in CSV, write the messages as a JSON array in one quoted field');
    }
  }
  // Arrow list columns may come back as typed or array-like values.
  if (v && typeof v === 'object' && !Array.isArray(v) && typeof (v as any).length === 'number') v = Array.from(v as ArrayLike<unknown>);
  if (!Array.isArray(v) || v.length === 0) bad(`must be a non-empty array of {role, content} messages, got ${JSON.stringify(v)}`);
  const out: ChatMessage[] = [];
  (v as unknown[]).forEach((m, i) => {
    if (!m || typeof m !== 'object') bad(`[${i}] must be an object {role, content}`);
    const o = m as Record<string, unknown>;
    let role = o.role;
    let content = o.content;
    if (role === undefined && typeof o.from === 'string') {
      role = SHAREGPT_ROLES[o.from] ?? o.from;
      content = o.value;
    }
    if (typeof role !== 'string' || typeof content !== 'string') bad(`[${i}] must have string "role" and "content" (or ShareGPT "from" and "value")`);
    out.push({ role: role as string, content: content as string });
  });
  if (!out.some((m) => m.role === 'assistant')) bad('has no assistant message, so nothing to learn', 'each conversation needs at least one message with role "assistant"');
  return out;
}
