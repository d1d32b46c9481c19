import { readFileSync, statSync } from 'node:fs';
import { extname } from 'node:path';
import * as aq from 'arquero';
import type { ColumnTable } from 'arquero';
import { UserError } from '@peftkit/core';

/** File formats the dataset reader understands. */
export const FILE_FORMATS = ['jsonl', 'json', 'csv', 'tsv', 'arrow'] as const;
export type FileFormat = (typeof FILE_FORMATS)[number];

const EXTENSIONS: Record<string, FileFormat> = {
  '.jsonl': 'jsonl', '.ndjson': 'jsonl', '.json': 'json', '.csv': 'csv', '.tsv': 'tsv',
  '.arrow': 'arrow', '.feather': 'arrow', '.ipc': 'arrow',
};

/** A table read from one file, with a way to name its rows in error messages. */
export interface LoadedTable {
  table: ColumnTable;
  file: string;
  format: FileFormat;
  /** Where row `i` sits in the file, for messages: `line 12` (JSONL, CSV), `record /3` (JSON), `row 3` (Arrow). */
  locate(row: number): string;
}

/**
 * The format of `file` from its extension.
 * @throws UserError for an unknown extension (with `pointer`, relative to the step settings, when given).
 */
export function detectFormat(file: string, pointer?: string): FileFormat {
  const f = EXTENSIONS[extname(file).toLowerCase()];
  if (!f) {
    throw new UserError(`${file}: cannot tell the file format from the extension "${extname(file)}"`, {
      file, pointer, hint: `use one of ${Object.keys(EXTENSIONS).join(', ')}, or set "format" to one of ${FILE_FORMATS.join(', ')}`,
    });
  }
  return f;
}

/**
 * Reads a data file into an arquero table: JSONL (one JSON object per line, blank lines skipped),
 * JSON (an array of objects, or `{"data": [...]}` as HF's `load_dataset("json", field="data")`),
 * CSV / TSV (header row; every value read as a string) or Arrow IPC (`.arrow`, Feather v2).
 *
 * CSV is read as text and scanned here first (quotes, field counts per record, line numbers),
 * then parsed with arquero's `fromCSV`: its `loadCSV` mangles some quoted fields (arquero#395).
 *
 * @param pointer JSON pointer (relative to the step's settings) of the setting naming the file,
 *   attached to errors.
 * @throws UserError naming the file and the line or record of a malformed row.
 */
export function readTable(file: string, format: FileFormat | 'auto' = 'auto', pointer?: string): LoadedTable {
  const fmt = format === 'auto' ? detectFormat(file, pointer) : format;
  let st;
  try {
    st = statSync(file);
  } catch {
    throw new UserError(`${file}: no such file`, { file, pointer, hint: 'check the path; relative paths resolve against the pipeline file\'s folder' });
  }
  if (!st.isFile()) throw new UserError(`${file}: is not a file`, { file, pointer });
  switch (fmt) {
    case 'jsonl': return readJsonl(file, pointer);
    case 'json': return readJson(file, pointer);
    case 'csv': return readCsv(file, ',', pointer);
    case 'tsv': return readCsv(file, '\t', pointer);
    case 'arrow': return readArrow(file, pointer);
  }
}

/** Arquero's `from` takes its column names from the first object: give it the union, in first-seen order. */
function tableFromRecords(records: Record<string, unknown>[]): ColumnTable {
  const names: string[] = [];
  const seen = new Set<string>();
  for (const r of records) for (const k of Object.keys(r)) if (!seen.has(k)) (seen.add(k), names.push(k));
  return aq.from(records, names);
}

function fail(file: string, where: string, message: string, pointer?: string, hint?: string): never {
  throw new UserError(`${file}: ${where}: ${message}`, { file, pointer, hint });
}

function readText(file: string): string {
  const text = readFileSync(file, 'utf8');
  return text.charCodeAt(0) === 0xfeff ? text.slice(1) : text;
}

function readJsonl(file: string, pointer?: string): LoadedTable {
  const lines = readText(file).split('\n');
  const records: Record<string, unknown>[] = [];
  const lineOf: number[] = [];
  lines.forEach((raw, i) => {
    const line = raw.endsWith('\r') ? raw.slice(0, -1) : raw;
    if (line.trim() === '') return;
    let v: unknown;
    try {
      v = JSON.parse(line);
    } catch (e) {
      fail(file, `line ${i + 1}`, `invalid JSON (${(e as Error).message})`, pointer, 'each line of a JSONL file must be one JSON object');
    }
    if (v === null || typeof v !== 'object' || Array.isArray(v)) fail(file, `line ${i + 1}`, `expected a JSON object, got ${describe(v)}`, pointer);
    records.push(v as Record<string, unknown>);
    lineOf.push(i + 1);
  });
  return { table: tableFromRecords(records), file, format: 'jsonl', locate: (r) => `line ${lineOf[r]}` };
}

function readJson(file: string, pointer?: string): LoadedTable {
  let doc: unknown;
  try {
    doc = JSON.parse(readText(file));
  } catch (e) {
    fail(file, 'document', `invalid JSON (${(e as Error).message})`, pointer);
  }
  let base = '';
  if (doc && typeof doc === 'object' && !Array.isArray(doc) && Array.isArray((doc as any).data)) {
    doc = (doc as any).data;
    base = '/data';
  }
  if (!Array.isArray(doc)) fail(file, 'document', `expected an array of records (or {"data": [...]}), got ${describe(doc)}`, pointer, 'for one JSON object per line use a .jsonl file');
  doc.forEach((v, i) => {
    if (v === null || typeof v !== 'object' || Array.isArray(v)) fail(file, `record ${base}/${i}`, `expected a JSON object, got ${describe(v)}`, pointer);
  });
  return { table: tableFromRecords(doc as Record<string, unknown>[]), file, format: 'json', locate: (r) => `record ${base}/${r}` };
}

/**
 * Splits CSV text into records (RFC 4180 quoting), checking each against the header's field count.
 * Returns the records' source text (blank lines removed) and the line each record starts on.
 */
export function scanCsv(text: string, delimiter: string, file: string, pointer?: string): { text: string; lines: number[] } {
  const records: string[] = [];
  const lines: number[] = [];
  let header = -1;
  let pos = 0;
  let line = 1;
  const n = text.length;
  while (pos < n) {
    const start = pos;
    const startLine = line;
    let fields = 1;
    let end = -1;
    while (end < 0) {
      if (text[pos] === '"') {
        pos++;
        for (;;) {
          if (pos >= n) fail(file, `line ${startLine}`, 'unterminated quoted field', pointer, 'close the quote: a quote inside a quoted field is written twice ("")');
          const c = text[pos];
          if (c === '"') {
            if (text[pos + 1] === '"') pos += 2;
            else { pos++; break; }
          } else {
            if (c === '\n') line++;
            pos++;
          }
        }
        const c = text[pos];
        if (pos < n && c !== delimiter && c !== '\n' && c !== '\r') {
          fail(file, `line ${line}`, `unexpected text after a closing quote`, pointer, 'a quote inside a quoted field is written twice ("")');
        }
      }
      while (pos < n && text[pos] !== delimiter && text[pos] !== '\n') pos++;
      if (pos >= n) end = n;
      else if (text[pos] === delimiter) { fields++; pos++; }
      else { end = pos; pos++; line++; }
    }
    let rec = text.slice(start, end);
    if (rec.endsWith('\r')) rec = rec.slice(0, -1);
    if (rec.trim() === '') continue;
    if (header < 0) header = fields;
    else if (fields !== header) {
      fail(file, `line ${startLine}`, `record has ${fields} fields, the header has ${header}`, pointer, `check the ${delimiter === '\t' ? 'tabs' : 'commas'} and quoting of that line`);
    }
    records.push(rec);
    lines.push(startLine);
  }
  if (header < 0) fail(file, 'line 1', 'the file is empty (a header row is needed)', pointer);
  return { text: records.join('\n') + '\n', lines: lines.slice(1) };
}

function readCsv(file: string, delimiter: string, pointer?: string): LoadedTable {
  const scanned = scanCsv(readText(file), delimiter, file, pointer);
  // autoType off: labels like "1" and dates stay strings; shapes convert what they need.
  const table = aq.fromCSV(scanned.text, { delimiter, autoType: false });
  return { table, file, format: delimiter === '\t' ? 'tsv' : 'csv', locate: (r) => `line ${scanned.lines[r]}` };
}

function readArrow(file: string, pointer?: string): LoadedTable {
  let table: ColumnTable;
  try {
    table = aq.fromArrow(new Uint8Array(readFileSync(file)));
  } catch (e) {
    fail(file, 'file', `not a readable Arrow IPC file (${(e as Error).message})`, pointer, 'write it as an Arrow IPC file or stream, e.g. with pyarrow.feather.write_feather');
  }
  return { table, file, format: 'arrow', locate: (r) => `row ${r}` };
}

function describe(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'an array';
  return `a ${typeof v}`;
}
