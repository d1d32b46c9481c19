/**
 * The method comparison as Markdown (docs/comparison.md) and as one self-contained HTML page
 * (docs/comparison.html): the same tables, and charts drawn as inline SVG by vega-lite (compiled to
 * a vega spec) and vega (rendered headless with `renderer: 'none'` and `toSVG()`). No script,
 * stylesheet or font is loaded from anywhere.
 */
import * as vega from 'vega';
import * as vl from 'vega-lite';
import type { MethodResult, WithWithout } from './collect.js';
import { FULL_COPIES, servingRows, type ServingMeasurement, type ServingRow } from './serving.js';

/** A method's run plus what the parent measured while it ran. */
export interface MeasuredMethod extends MethodResult {
  /** Peak resident set size of the run's process, in bytes. */
  peakRssBytes: number;
  /** Wall seconds of the whole pipeline run (load, data, inject, train, evaluate, export). */
  wallSeconds: number;
  /** The machine's 1-minute load average when the run finished (other processes share the cores). */
  loadAverage: number;
}

/** Everything the report shows. */
export interface Comparison {
  /** ISO 8601 time the comparison finished. */
  date: string;
  /** The command line that produced it. */
  command: string;
  machine: { cpuModel: string; cpus: number; memoryBytes: number; node: string; tfjs: string; backend: string; platform: string };
  /** The `--set` overrides every pipeline ran with, and a sentence saying what they mean. */
  overrides: string[];
  sizes: string;
  /** The base model: folder, parameters, bytes on disk, and from its config.json the architecture, layers and width. */
  base: { dir: string; params: number; diskBytes: number; modelType: string; layers: number; hidden: number };
  methods: MeasuredMethod[];
  serving: ServingMeasurement | null;
}

/** How a method's exported folder is called in the serving table (`one base + N <this>`). */
export const SERVING_LABELS: Record<string, string> = {
  lora: 'LoRA adapters',
  qlora: 'QLoRA adapters (NF4 base)',
  houlsby: 'Houlsby adapters',
  pfeiffer: 'Pfeiffer adapters',
  'parallel-adapter': 'parallel adapters',
  'prefix-tuning': 'prefix-tuning prefixes',
  'prompt-tuning': 'prompt-tuning soft prompts',
};

/** Display names of the methods the pipelines inject. */
export const METHOD_LABELS: Record<string, string> = {
  lora: 'LoRA',
  qlora: 'QLoRA (NF4 base)',
  houlsby: 'Houlsby adapter',
  pfeiffer: 'Pfeiffer adapter',
  'parallel-adapter': 'parallel adapter',
  'prefix-tuning': 'prefix tuning',
  'prompt-tuning': 'prompt tuning',
  full: 'full fine-tuning',
};

export const label = (m: { method: string }) => METHOD_LABELS[m.method] ?? m.method;

const MiB = 2 ** 20;
const int = (n: number) => Math.round(n).toLocaleString('en-US');
const fixed = (n: number, d: number) => n.toFixed(d);
/** Bytes as an exact count with a readable unit: `266,752 B (260.5 KiB)`. */
export function bytes(n: number): string {
  const unit = n >= MiB ? `${(n / MiB).toFixed(2)} MiB` : `${(n / 1024).toFixed(1)} KiB`;
  return `${int(n)} B (${unit})`;
}
const pct = (x: number) => (x >= 1 ? x.toFixed(2) : x >= 0.01 ? x.toFixed(3) : x.toPrecision(2));

/** A table: header cells and rows of cells (plain text; escaped for HTML, `|` escaped for Markdown). */
export interface Table {
  head: string[];
  /** `r` for right-aligned (numeric) columns. */
  align: ('l' | 'r')[];
  rows: string[][];
}

/** The main table: one row per method. */
export function methodsTable(c: Comparison): Table {
  return {
    head: ['method', 'pipeline', 'trainable params', 'trainable % of base', 'peak RSS (MiB)', 'train time (s)', 'tokens/s', 'test accuracy: adapter (base)', 'test F1: adapter (base)', 'reference perplexity: before → after', 'saved bytes'],
    align: ['l', 'l', 'r', 'r', 'r', 'r', 'r', 'r', 'r', 'r', 'r'],
    rows: c.methods.map((m) => [
      label(m),
      m.pipeline,
      int(m.trainableParams),
      pct(m.trainablePercentOfBase),
      fixed(m.peakRssBytes / MiB, 0),
      fixed(m.trainSeconds, 1),
      int(m.tokensPerSecond),
      `${fixed(m.accuracy.with_adapter, 3)} (${fixed(m.accuracy.without_adapter, 3)})`,
      `${fixed(m.f1.with_adapter, 3)} (${fixed(m.f1.without_adapter, 3)})`,
      `${fixed(m.referencePerplexity.without_adapter, 1)} → ${fixed(m.referencePerplexity.with_adapter, 1)} (×${fixed(m.referencePerplexity.with_adapter / m.referencePerplexity.without_adapter, 2)})`,
      bytes(m.savedBytes),
    ]),
  };
}

/** The serving table: rows are setups, columns memory and disk for each N. */
export function servingTable(s: ServingMeasurement): Table {
  const rows = servingRows(s);
  const setups = [...new Set(rows.map((r) => r.setup))];
  const at = (setup: string, n: number) => rows.find((r) => r.setup === setup && r.n === n);
  const mib = (r: ServingRow | undefined, k: 'memoryBytes' | 'diskBytes') => (r ? fixed(r[k] / MiB, 2) : '');
  return {
    head: ['setup', 'per task in memory (measured)', ...s.counts.map((n) => `memory, N = ${n} (MiB)`), ...s.counts.map((n) => `disk, N = ${n} (MiB)`)],
    align: ['l', 'r', ...s.counts.map(() => 'r' as const), ...s.counts.map(() => 'r' as const)],
    rows: setups.map((setup) => {
      const first = rows.find((r) => r.setup === setup)!;
      return [setup, bytes(first.perTaskMemoryBytes), ...s.counts.map((n) => mib(at(setup, n), 'memoryBytes')), ...s.counts.map((n) => mib(at(setup, n), 'diskBytes'))];
    }),
  };
}

/** Ratios at the largest N: full copies ÷ one base with N adapters, per setup. */
export function servingRatios(s: ServingMeasurement): { setup: string; n: number; memory: number; disk: number }[] {
  const rows = servingRows(s);
  const n = Math.max(...s.counts);
  const full = rows.find((r) => r.setup === FULL_COPIES && r.n === n);
  if (!full) return [];
  return rows.filter((r) => r.setup !== FULL_COPIES && r.n === n).map((r) => ({ setup: r.setup, n, memory: full.memoryBytes / r.memoryBytes, disk: full.diskBytes / r.diskBytes }));
}

function markdownTable(t: Table): string {
  const cell = (s: string) => s.replace(/\|/g, '\\|');
  return [
    `| ${t.head.map(cell).join(' | ')} |`,
    `|${t.align.map((a) => (a === 'r' ? '---:' : ':---')).join('|')}|`,
    ...t.rows.map((r) => `| ${r.map(cell).join(' | ')} |`),
  ].join('\n');
}

const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');

function htmlTable(t: Table): string {
  const th = t.head.map((h, i) => `<th class="${t.align[i]}">${esc(h)}</th>`).join('');
  const body = t.rows.map((r) => `<tr>${r.map((c, i) => `<td class="${t.align[i]}">${esc(c)}</td>`).join('')}</tr>`).join('\n');
  return `<table>\n<thead><tr>${th}</tr></thead>\n<tbody>\n${body}\n</tbody>\n</table>`;
}

/**
 * The single class a classifier answered for every test mail, or null when it answered both:
 * all positive when recall is 1 and accuracy equals precision (every mail predicted positive, so
 * both are TP / N); all negative when recall is 0 and accuracy equals the negative class's share.
 */
export function constantAnswer(m: MethodResult, which: keyof WithWithout): string | null {
  const eq = (a: number, b: number) => Math.abs(a - b) < 1e-9;
  const acc = m.accuracy[which];
  const positiveShare = m.majority.label === m.positiveLabel ? m.majority.accuracy : 1 - m.majority.accuracy;
  if (m.recall[which] === 1 && eq(acc, m.precision[which])) return m.positiveLabel;
  if (m.recall[which] === 0 && eq(acc, 1 - positiveShare)) return m.majority.label === m.positiveLabel ? 'the other class' : m.majority.label;
  return null;
}

const plural = (n: number, one: string, many: string) => (n === 1 ? one : many);

/**
 * Sentences derived from the numbers (so that they stay true when the comparison is run again):
 * how the methods stand against the majority baseline and against full fine-tuning, at what
 * fraction of its trainable parameters, memory and saved bytes; forgetting; and how the serving
 * setups compare at the largest N.
 */
export function findings(c: Comparison): string[] {
  const out: string[] = [];
  const full = c.methods.find((m) => m.method === 'full');
  const peft = c.methods.filter((m) => m.method !== 'full');
  const maj = c.methods[0]?.majority;
  if (maj) {
    const beat = c.methods.filter((m) => m.accuracy.with_adapter > maj.accuracy + 1e-9).map(label);
    out.push(`Always answering "${maj.label}" scores accuracy ${fixed(maj.accuracy, 3)} (F1 ${fixed(maj.f1, 3)}) on this test split; ${beat.length ? `${beat.join(', ')} ${plural(beat.length, 'beats', 'beat')} that accuracy after training, ${c.methods.length - beat.length} of ${c.methods.length} ${plural(c.methods.length - beat.length, 'does', 'do')} not` : 'no method beats that accuracy after training'}.`);
    const constant = c.methods.map((m) => ({ m, a: constantAnswer(m, 'with_adapter') })).filter((x) => x.a);
    if (constant.length) out.push(`Answering one class for every test mail after training: ${constant.map((x) => `${label(x.m)} (always "${x.a}")`).join(', ')}; such a run's F1 says nothing about telling spam from ham.`);
    const still = c.methods.filter((m) => Math.abs(m.accuracy.with_adapter - m.accuracy.without_adapter) < 0.01).map(label);
    if (still.length) out.push(`Within 0.01 of the base's own accuracy after training, so nothing measurable was learned in ${c.methods[0]!.steps} steps at the learning rate of ${plural(still.length, 'its', 'their')} pipeline file: ${still.join(', ')}.`);
    const baseAnswer = constantAnswer(c.methods[0]!, 'without_adapter');
    const base = c.methods[0]!;
    out.push(`The base alone (adapter off), asked the same question, scores accuracy ${fixed(base.accuracy.without_adapter, 3)} and F1 ${fixed(base.f1.without_adapter, 3)}${baseAnswer ? `, answering "${baseAnswer}" for every mail` : ''}.`);
  }
  if (full && peft.length) {
    const best = [...peft].sort((a, b) => b.accuracy.with_adapter - a.accuracy.with_adapter || b.f1.with_adapter - a.f1.with_adapter)[0]!;
    const rss = best.peakRssBytes <= full.peakRssBytes ? `${fixed((100 * (full.peakRssBytes - best.peakRssBytes)) / full.peakRssBytes, 0)} % lower` : `${fixed((100 * (best.peakRssBytes - full.peakRssBytes)) / full.peakRssBytes, 0)} % higher`;
    out.push(
      `The most accurate parameter-efficient method is ${label(best)}: accuracy ${fixed(best.accuracy.with_adapter, 3)} and F1 ${fixed(best.f1.with_adapter, 3)}, against full fine-tuning's ${fixed(full.accuracy.with_adapter, 3)} and ${fixed(full.f1.with_adapter, 3)}, ` +
        `while training ${pct(best.trainablePercentOfBase)} % of the parameters and saving ${fixed((100 * best.savedBytes) / full.savedBytes, 1)} % of the bytes, with a peak RSS ${rss} than full fine-tuning's.`,
    );
    out.push(`Last logged training loss (the chart shows the curves): ${c.methods.map((m) => `${label(m)} ${fixed(m.loss.at(-1)!.loss, 2)}`).join(', ')}.`);
    const memSpread = peft.map((m) => m.peakRssBytes / full.peakRssBytes);
    out.push(`Peak RSS of the PEFT runs ranges from ${fixed(100 * Math.min(...memSpread), 0)} % to ${fixed(100 * Math.max(...memSpread), 0)} % of full fine-tuning's ${fixed(full.peakRssBytes / MiB, 0)} MiB: on a model this small the process's fixed costs (Node.js, the WASM heap, the activations kept for the backward pass, the datasets) dominate, not the weights or optimizer state (${fixed((full.trainableParams * 4 * 4) / MiB, 1)} MiB for full fine-tuning's float32 weights, gradients and two AdamW moments).`);
    const change = (m: MethodResult) => m.referencePerplexity.with_adapter - m.referencePerplexity.without_adapter;
    const worst = [...c.methods].sort((a, b) => change(b) - change(a))[0]!;
    const factor = (m: MethodResult) => m.referencePerplexity.with_adapter / m.referencePerplexity.without_adapter;
    out.push(
      `Forgetting, the perplexity of held-out pretraining text with the adapter on divided by the base's: ${c.methods.map((m) => `${label(m)} ×${fixed(factor(m), 2)}`).join(', ')}; the largest rise is ${label(worst)}'s. ` +
        'The training loss covers only the answer tokens after each mail\'s prompt, so nothing holds the rest of the next-token distribution in place. Switched off, an adapter leaves the base exactly as it was; full fine-tuning has no such switch (its "before" comes from a copy of the base kept for the comparison).',
    );
    const q = c.methods.find((m) => m.method === 'qlora');
    const float = c.methods.find((m) => m.method !== 'qlora');
    if (q && float) out.push(`Quantizing the base to NF4 alone moves the reference perplexity from ${fixed(float.referencePerplexity.without_adapter, 2)} (the float32 base, "before" in the other runs) to ${fixed(q.referencePerplexity.without_adapter, 2)} (QLoRA's "before"), and the test accuracy of the base from ${fixed(float.accuracy.without_adapter, 3)} to ${fixed(q.accuracy.without_adapter, 3)}.`);
  }
  if (c.serving) {
    for (const r of servingRatios(c.serving)) out.push(`Serving ${r.n} tasks as ${r.setup.replace(' N ', ` ${r.n} `)} takes ${fixed(r.memory, 1)}× less tensor memory and ${fixed(r.disk, 1)}× less disk than ${r.n} fully fine-tuned copies.`);
  }
  return out;
}

/** The paragraph on what the numbers cannot say, with this comparison's base and sizes. */
export function limits(c: Comparison): string {
  const b = c.base;
  const millions = b.params >= 1e6 ? `${(b.params / 1e6).toFixed(1)}M` : `${int(b.params)}`;
  const train = c.methods[0]?.tokensSeen != null ? ` (${int(c.methods[0].tokensSeen)} tokens)` : '';
  return (
    `Limits: the base is a ${millions}-parameter ${b.modelType} (${b.layers} layers, width ${b.hidden}) pretrained briefly on the same mail corpus, and each method trains for ${c.methods[0]?.steps ?? '?'} optimizer steps${train} with one seed and the settings of its pipeline file, not tuned per method; differences of a few points of accuracy between methods are within what another seed or learning rate would change, and some methods simply need more steps or a larger model (prompt tuning only matches fine-tuning at billions of parameters, Lester et al. 2021, §3). ` +
    'Timings come from a 2-core machine shared with other jobs (the 1-minute load average at the end of each run is listed under the run folders), on the single-threaded WASM backend: they show orders of magnitude, not a benchmark. ' +
    'Peak RSS is the whole Node.js process (runtime, tokenizer, datasets, the WASM heap that never shrinks), so at this model size it says little about the methods themselves; the tensor bytes in the serving table isolate what the weights cost. ' +
    'Nothing here predicts how the methods rank on a model with billions of parameters, where the weights, gradients and optimizer state that PEFT avoids dominate memory (the reason QLoRA exists); what carries over is the arithmetic of trainable parameters, saved bytes and serving many tasks from one base.'
  );
}

/** Names of the charts, in the order they appear; the HTML has one SVG per chart. */
export const CHARTS = ['loss', 'quality', 'trainable', 'memory', 'saved', 'serving'] as const;

/** The vega-lite specs of the charts. */
export function chartSpecs(c: Comparison): Record<(typeof CHARTS)[number], vl.TopLevelSpec> {
  const order = c.methods.map(label);
  const methodX = { field: 'method', type: 'nominal' as const, sort: order, title: null, axis: { labelAngle: -30 } };
  const color = { field: 'method', type: 'nominal' as const, sort: order, legend: null };
  const base = { $schema: 'https://vega.github.io/schema/vega-lite/v6.json', config: { font: 'sans-serif', view: { stroke: null } }, background: 'white' } as const;
  const bar = (title: string, field: string, axisTitle: string, values: Record<string, unknown>[], log = false, cap = Infinity, format = '~s'): vl.TopLevelSpec => {
    // On a log scale a bar cannot start at 0: it starts at the power of ten below the smallest value.
    const v = values.map((x) => Number(x[field])).filter((x) => x > 0);
    const lo = 10 ** Math.floor(Math.log10(Math.min(...v)));
    const hi = Math.min(cap, Math.max(...v) * 2);
    const scale = log ? { type: 'log' as const, domain: [lo, hi], nice: false } : {};
    return {
      ...base,
      title,
      width: 360,
      height: 220,
      data: { values },
      layer: [
        { mark: { type: 'bar' }, encoding: { x: methodX, y: { field, type: 'quantitative', title: axisTitle, scale, ...(log ? { axis: { format } } : {}) }, ...(log ? { y2: { datum: lo } } : {}), color } },
        { mark: { type: 'text', dy: -6, fontSize: 10 }, encoding: { x: methodX, y: { field, type: 'quantitative', scale }, text: { field: 'text' } } },
      ],
    };
  };
  const quality = c.methods.flatMap((m) => [
    { method: label(m), metric: 'accuracy', series: 'with adapter', value: m.accuracy.with_adapter },
    { method: label(m), metric: 'accuracy', series: 'base (adapter off)', value: m.accuracy.without_adapter },
    { method: label(m), metric: 'accuracy', series: 'majority class', value: m.majority.accuracy },
    { method: label(m), metric: 'F1', series: 'with adapter', value: m.f1.with_adapter },
    { method: label(m), metric: 'F1', series: 'base (adapter off)', value: m.f1.without_adapter },
    { method: label(m), metric: 'F1', series: 'majority class', value: m.majority.f1 },
  ]);
  const serving = c.serving
    ? servingRows(c.serving).flatMap((r) => [
        { setup: r.setup, n: r.n, what: 'memory (tensors)', mib: r.memoryBytes / MiB },
        { setup: r.setup, n: r.n, what: 'disk', mib: r.diskBytes / MiB },
      ])
    : [];
  return {
    loss: {
      ...base,
      title: 'Training loss (mean of each logging window)',
      width: 560,
      height: 300,
      data: { values: c.methods.flatMap((m) => m.loss.map((p) => ({ method: label(m), step: p.step, loss: p.loss }))) },
      mark: { type: 'line', point: { size: 12 } },
      encoding: {
        x: { field: 'step', type: 'quantitative', title: 'optimizer step' },
        y: { field: 'loss', type: 'quantitative', title: 'cross-entropy per target token (nats)', scale: { zero: false } },
        color: { field: 'method', type: 'nominal', sort: order, title: 'method', legend: { labelLimit: 0 } },
      },
    },
    quality: {
      ...base,
      title: 'Test accuracy and F1 (positive class: spam)',
      data: { values: quality },
      facet: { column: { field: 'metric', type: 'nominal', title: null, sort: ['accuracy', 'F1'] } },
      spec: {
        width: 330,
        height: 220,
        mark: 'bar',
        encoding: {
          x: methodX,
          xOffset: { field: 'series', type: 'nominal', sort: ['with adapter', 'base (adapter off)', 'majority class'] },
          y: { field: 'value', type: 'quantitative', title: null, scale: { domain: [0, 1] } },
          color: { field: 'series', type: 'nominal', sort: ['with adapter', 'base (adapter off)', 'majority class'], title: null, legend: { orient: 'bottom' } },
        },
      },
    },
    trainable: bar('Trainable parameters, % of the base (log scale)', 'percent', '% of base parameters', c.methods.map((m) => ({ method: label(m), percent: m.trainablePercentOfBase, text: `${pct(m.trainablePercentOfBase)} %` })), true, 100, '~g'),
    memory: bar('Peak RSS of the whole run (MiB)', 'mib', 'MiB', c.methods.map((m) => ({ method: label(m), mib: m.peakRssBytes / MiB, text: fixed(m.peakRssBytes / MiB, 0) }))),
    saved: bar('Bytes to save per task: the exported folder (log scale)', 'bytes', 'bytes', c.methods.map((m) => ({ method: label(m), bytes: m.savedBytes, text: m.savedBytes >= MiB ? `${fixed(m.savedBytes / MiB, 1)} MiB` : `${fixed(m.savedBytes / 1024, 0)} KiB` })), true),
    serving: {
      ...base,
      title: 'Serving N tasks: one base + N adapters vs N fully fine-tuned copies',
      data: { values: serving },
      facet: { column: { field: 'what', type: 'nominal', title: null, sort: ['memory (tensors)', 'disk'] } },
      spec: {
        width: 300,
        height: 240,
        mark: { type: 'line', point: true },
        encoding: {
          x: { field: 'n', type: 'quantitative', title: 'N tasks', scale: { type: 'log', base: 2 }, axis: { values: c.serving?.counts ?? [] } },
          y: { field: 'mib', type: 'quantitative', title: 'MiB' },
          color: { field: 'setup', type: 'nominal', title: null, legend: { orient: 'bottom', columns: 2, labelLimit: 0 } },
        },
      },
      resolve: { scale: { y: 'independent' } },
    },
  };
}

/** Renders a vega-lite spec to an SVG string, headless. */
export async function renderSvg(spec: vl.TopLevelSpec): Promise<string> {
  const view = new vega.View(vega.parse(vl.compile(spec).spec), { renderer: 'none' });
  try {
    return await view.toSVG();
  } finally {
    view.finalize();
  }
}

/** How the runs were sized and measured, as bullet points. */
function setupLines(c: Comparison): string[] {
  return [
    `Date: ${c.date}`,
    `Machine: ${c.machine.cpuModel}, ${c.machine.cpus} cores, ${fixed(c.machine.memoryBytes / 2 ** 30, 1)} GiB; ${c.machine.platform}; Node.js ${c.machine.node}; TensorFlow.js ${c.machine.tfjs}, backend ${c.machine.backend}`,
    `Base: ${c.base.dir} (${int(c.base.params)} parameters, ${bytes(c.base.diskBytes)} on disk)`,
    `Sizes: ${c.sizes}`,
    `Overrides given to every pipeline: ${c.overrides.map((o) => `\`${o}\``).join(', ')}`,
    'Peak RSS: the larger of the run process\'s own `process.resourceUsage().maxRSS` at exit and its `VmHWM` polled every 200 ms; each pipeline runs in its own process, one after another.',
    'Train time: from the train step\'s "train started" to "train finished" in run.log (includes writing the final checkpoint); tokens/s: tokens trained (the checkpoint\'s `tokens_seen`: attention-mask ones, so padding and virtual tokens excluded) ÷ train time.',
    'Accuracy and F1: the evaluate step on the test split, label words " ham" / " spam" scored by the causal LM, with the adapter and with it disabled (the base); the majority baseline always answers the training split\'s most common label.',
    'Reference perplexity: held-out pretraining text (data/corpus/validation.jsonl), before (adapter off) → after (adapter on): the forgetting.',
    'Saved bytes: every file of the export step\'s folder (for full fine-tuning the whole checkpoint with config and tokenizer files).',
  ];
}

const SERVING_NOTE =
  'Memory is `tf.memory().numBytes` (bytes held by tensors) measured while loading: the base once, then its exported adapter loaded N times under different names with `loadAdapters` onto a fresh base for each N, and N `loadPretrained` copies of the fully fine-tuned checkpoint. For QLoRA the base is quantized to NF4 (block 64, double quantization) after loading and its packed codes, which are typed arrays outside tfjs, are counted from the quantizer\'s report; its adapter is the LoRA folder the spam-qlora run exported. Disk is base folder + N × exported adapter folder, or N × the full checkpoint folder.';

/** docs/comparison.md. */
export function renderMarkdown(c: Comparison): string {
  const parts = [
    '# PEFT methods compared on one base',
    '',
    'Generated by `tools/compare` from the runs below; do not edit by hand (run the command again).',
    '',
    '```sh',
    c.command,
    '```',
    '',
    ...setupLines(c).map((l) => `- ${l}`),
    '',
    '## Results',
    '',
    markdownTable(methodsTable(c)),
    '',
    `Majority baseline on the same ${c.methods[0]?.testExamples ?? 0} test mails: accuracy ${fixed(c.methods[0]?.majority.accuracy ?? NaN, 3)}, F1 ${fixed(c.methods[0]?.majority.f1 ?? NaN, 3)} (always "${c.methods[0]?.majority.label ?? '?'}").`,
    '',
  ];
  if (c.serving) {
    parts.push('## Serving N tasks from one base', '', SERVING_NOTE, '', markdownTable(servingTable(c.serving)), '');
    const failed = c.serving.setups.filter((s) => s.error);
    for (const f of failed) parts.push(`- ${f.label}: not measured (${f.error})`);
    if (failed.length) parts.push('');
  }
  parts.push('## What the numbers show', '', ...findings(c).map((f) => `- ${f}`), '', limits(c), '', '## Run folders', '', ...c.methods.map((m) => `- ${label(m)}: \`${m.runDir}\` (whole run ${fixed(m.wallSeconds, 0)} s, load average ${fixed(m.loadAverage, 1)} at its end)`), '');
  return parts.join('\n');
}

const CSS = `body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;max-width:1200px;margin:2em auto;padding:0 1em;color:#222;line-height:1.45}
table{border-collapse:collapse;margin:1em 0;font-size:.9em}th,td{border:1px solid #ccc;padding:.3em .6em}th{background:#f3f3f3}
td.r,th.r{text-align:right}td.l,th.l{text-align:left}pre{background:#f6f6f6;padding:.8em;overflow-x:auto}
figure{margin:1.5em 0}.charts{display:flex;flex-wrap:wrap;gap:1em}code{background:#f3f3f3;padding:0 .2em}`;

/** docs/comparison.html: self-contained (inline CSS and SVG, nothing fetched). */
export async function renderHtml(c: Comparison): Promise<string> {
  const specs = chartSpecs(c);
  const svgs: Record<string, string> = {};
  for (const name of CHARTS) svgs[name] = await renderSvg(specs[name]);
  const fig = (name: (typeof CHARTS)[number]) => `<figure id="chart-${name}">${svgs[name]}</figure>`;
  const li = (lines: string[]) => `<ul>\n${lines.map((l) => `<li>${esc(l)}</li>`).join('\n')}\n</ul>`;
  const serving = c.serving
    ? `<h2>Serving N tasks from one base</h2>\n<p>${esc(SERVING_NOTE)}</p>\n${htmlTable(servingTable(c.serving))}\n${li(c.serving.setups.filter((s) => s.error).map((s) => `${s.label}: not measured (${s.error})`))}\n${fig('serving')}`
    : `<h2>Serving N tasks from one base</h2>\n<p>Not measured in this run.</p>\n${fig('serving')}`;
  return `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>PEFT methods compared on one base</title>
<style>${CSS}</style>
</head>
<body>
<h1>PEFT methods compared on one base</h1>
<p>Generated by <code>tools/compare</code>; the Markdown twin is comparison.md.</p>
<pre>${esc(c.command)}</pre>
${li(setupLines(c))}
<h2>Results</h2>
${htmlTable(methodsTable(c))}
<p>Majority baseline on the same ${c.methods[0]?.testExamples ?? 0} test mails: accuracy ${fixed(c.methods[0]?.majority.accuracy ?? NaN, 3)}, F1 ${fixed(c.methods[0]?.majority.f1 ?? NaN, 3)} (always &quot;${esc(c.methods[0]?.majority.label ?? '?')}&quot;).</p>
${fig('loss')}
${fig('quality')}
<div class="charts">${fig('trainable')}${fig('memory')}${fig('saved')}</div>
${serving}
<h2>What the numbers show</h2>
${li(findings(c))}
<p>${esc(limits(c))}</p>
<h2>Run folders</h2>
${li(c.methods.map((m) => `${label(m)}: ${m.runDir} (whole run ${fixed(m.wallSeconds, 0)} s, load average ${fixed(m.loadAverage, 1)} at its end)`))}
</body>
</html>
`;
}
