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

/** The report as Markdown: a heading, the metrics table (arquero's `toMarkdown`) and the samples. */
export function reportMarkdown(title: string, table: aq.ColumnTable, samples: Sample[]): string {
  const md = table.toMarkdown({ format: { with_adapter: num, without_adapter: num, change: num } });
  const parts = [`# ${title}`, '', md.trimEnd(), ''];
  if (samples.length) {
    parts.push('## Samples', '');
    samples.forEach((s, i) => {
      parts.push(`${i + 1}. prompt: \`${s.prompt.replace(/`/g, "'")}\``, `   - with adapter: \`${s.with_adapter.replace(/`/g, "'")}\``);
      if (s.without_adapter !== undefined) parts.push(`   - without adapter: \`${s.without_adapter.replace(/`/g, "'")}\``);
    });
    parts.push('');
  }
  return parts.join('\n');
}
