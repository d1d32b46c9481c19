import * as aq from 'arquero';

/** One metric with and without the adapter. */
export interface ReportRow {
  metric: string;
  with_adapter: number | null;
  without_adapter: number | null;
  /** with − without, when both exist. */
  change: number | null;
}

/** A generated sample for the report. */
export interface Sample {
  prompt: string;
  with_adapter: string;
  without_adapter?: string;
}

/** Rows from two metric maps (keys in `order` first, then the rest in insertion order). */
export function reportRows(withAdapter: Record<string, number>, without: Record<string, number> | undefined, extra: Record<string, number> = {}): ReportRow[] {
  const keys = [...new Set([...Object.keys(withAdapter), ...Object.keys(without ?? {})])];
  const rows = keys.map((metric) => {
    const a = withAdapter[metric] ?? null;
    const b = without?.[metric] ?? null;
    return { metric, with_adapter: a, without_adapter: b, change: a !== null && b !== null ? a - b : null };
  });
  for (const [metric, v] of Object.entries(extra)) rows.push({ metric, with_adapter: v, without_adapter: null, change: null });
  return rows;
}

/** The rows as an arquero table (columns metric, with_adapter, without_adapter, change). */
export function reportTable(rows: ReportRow[]): aq.ColumnTable {
  return aq.from(rows);
}

const num = (v: unknown) => (typeof v === 'number' && Number.isFinite(v) ? (Math.abs(v) >= 1000 ? v.toFixed(1) : v.toPrecision(5).replace(/\.?0+$/, '')) : v === null || v === undefined ? '' : String(v));

/**
 * A fenced code block holding `text` exactly: the fence is longer than any run of backticks in
 * it, so blank lines and backticks in a sample cannot end it early (CommonMark 4.5).
 */
export function fenced(text: string): string {
  const longest = Math.max(2, ...[...text.matchAll(/`+/g)].map((m) => m[0].length));
  const fence = '`'.repeat(longest + 1);
  return `${fence}text\n${text}\n${fence}`;
}

/**
 * The report as Markdown: a heading, what the classification metrics average over (`note`), the
 * metrics table (arquero's `toMarkdown`) and the samples, each text in a fenced block.
 */
export function reportMarkdown(title: string, table: aq.ColumnTable, samples: Sample[], note?: string): string {
  const md = table.toMarkdown({ format: { with_adapter: num, without_adapter: num, change: num } });
  const parts = [`# ${title}`, ''];
  if (note) parts.push(note, '');
  parts.push(md.trimEnd(), '');
  if (samples.length) {
    parts.push('## Samples', '');
    samples.forEach((s, i) => {
      parts.push(`### Sample ${i + 1}`, '', 'Prompt:', '', fenced(s.prompt), '', 'With the adapter:', '', fenced(s.with_adapter), '');
      if (s.without_adapter !== undefined) parts.push('Without the adapter:', '', fenced(s.without_adapter), '');
    });
  }
  return parts.join('\n');
}

/**
 * The headline of a report in one line: accuracy and F1 (with the base's and the majority
 * class's), else perplexity, and forgetting as the held-out (reference) perplexity before and
 * after, e.g. `accuracy 0.899 (base 0.301, majority 0.699); F1 0.848 (base 0.463, majority 0)`.
 */
export function headline(rows: ReportRow[]): string {
  const get = (m: string) => rows.find((r) => r.metric === m);
  const majority = (m: string) => rows.find((r) => r.metric.startsWith(`majority_class_${m} `))?.with_adapter;
  const f = (v: number | null | undefined, digits = 3) => (v == null ? '?' : v.toFixed(digits));
  const parts: string[] = [];
  for (const m of ['accuracy', 'f1']) {
    const r = get(m);
    if (!r) continue;
    const refs = [r.without_adapter != null ? `base ${f(r.without_adapter)}` : '', majority(m) != null ? `majority ${f(majority(m))}` : ''].filter(Boolean);
    parts.push(`${m === 'f1' ? 'F1' : m} ${f(r.with_adapter)}${refs.length ? ` (${refs.join(', ')})` : ''}`);
  }
  const ppl = get('perplexity');
  if (!parts.length && ppl) parts.push(`perplexity ${f(ppl.with_adapter, 1)}${ppl.without_adapter != null ? ` (base ${f(ppl.without_adapter, 1)})` : ''}`);
  const ref = get('reference_perplexity');
  if (ref?.with_adapter != null && ref.without_adapter != null) {
    parts.push(`forgetting: held-out perplexity ${f(ref.without_adapter, 1)} -> ${f(ref.with_adapter, 1)} (x${(ref.with_adapter / ref.without_adapter).toFixed(2)})`);
  }
  return parts.join('; ');
}
