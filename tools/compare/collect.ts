/**
 * Reads one finished pipeline run folder (`runs/<pipeline>/<timestamp>/`) into the numbers the
 * method comparison shows. Everything comes from files the run wrote: `pipeline.resolved.json`
 * (which step is which kind), `metrics.jsonl` (the load step's parameter count, the inject step's
 * trainable parameters, the train rows, the export row), `run.log` (when the train step started and
 * finished), the last checkpoint's `trainer_state.json` (tokens trained), `evaluate/report.json`
 * (accuracy, F1, reference perplexity with and without the adapter, the majority baseline) and the
 * exported folder itself (its bytes, counted here).
 */
import { existsSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { UserError } from '@peftkit/core';

/** One point of a training loss curve: the mean loss of the logging window ending at `step`. */
export interface LossPoint {
  step: number;
  loss: number;
}

/** A metric measured with the adapter active and with it disabled (the base model). */
export interface WithWithout {
  with_adapter: number;
  without_adapter: number;
}

/** A file that the export step wrote, with its size in bytes. */
export interface SavedFile {
  file: string;
  bytes: number;
}

/** What one run of one method measured. */
export interface MethodResult {
  /** The pipeline's name, e.g. `spam-lora`. */
  pipeline: string;
  /** The PEFT method the inject step used, e.g. `lora`, `houlsby`, `full`. */
  method: string;
  runDir: string;
  /** Backend the run used (environment.json), e.g. `wasm`. */
  backend: string;
  /** Parameters of the loaded base model (the load step's `num_parameters`). */
  baseParams: number;
  /** Parameters the optimizer updates (the inject step's `trainable_params`). */
  trainableParams: number;
  /** The inject step's own `all_params` and `trainable_percent` (for QLoRA they count only float32 parameters). */
  allParamsReported: number;
  trainablePercentReported: number;
  /** 100 · trainableParams / baseParams: the same denominator for every method. */
  trainablePercentOfBase: number;
  /** Optimizer steps taken (the last train row's `global_step`). */
  steps: number;
  /** Wall seconds from "train started" to "train finished" in run.log. */
  trainSeconds: number;
  /** Tokens fed to the model while training (`tokens_seen` of the last checkpoint), null when no checkpoint was written. */
  tokensSeen: number | null;
  /** tokensSeen / trainSeconds; without a checkpoint, the mean of the train rows' `tokens_per_s`. */
  tokensPerSecond: number;
  loss: LossPoint[];
  /** Test split size and the evaluate step's classification metrics. */
  testExamples: number;
  accuracy: WithWithout;
  precision: WithWithout;
  recall: WithWithout;
  f1: WithWithout;
  /** The class scored as positive for precision, recall and F1 (e.g. `spam`). */
  positiveLabel: string;
  /** Always predicting the training split's majority class, on the same test split. */
  majority: { label: string; accuracy: number; f1: number };
  /** Perplexity of held-out pretraining text: without_adapter is before fine-tuning, with_adapter after (forgetting). */
  referencePerplexity: WithWithout;
  /** The exported folder (adapter, or for `full` the whole checkpoint) and its bytes. */
  exportDir: string;
  exportFormat: string;
  savedBytes: number;
  savedFiles: SavedFile[];
  /** Bytes of the `*.safetensors` files alone among savedFiles. */
  savedWeightBytes: number;
}

interface StepDecl {
  kind: string;
}

/** Parses a JSON-lines file; names the file and line on a bad line. */
export function readJsonLines(path: string): Record<string, unknown>[] {
  const rows: Record<string, unknown>[] = [];
  readFileSync(path, 'utf8').split('\n').forEach((line, i) => {
    if (!line.trim()) return;
    try {
      rows.push(JSON.parse(line) as Record<string, unknown>);
    } catch (e) {
      throw new UserError(`${path}:${i + 1}: not a JSON line (${(e as Error).message})`, { hint: 'the run may still be writing it, or it was cut off; run the pipeline again' });
    }
  });
  return rows;
}

/** Every file under `dir` (recursively) with its size in bytes, paths relative to `dir`, sorted. */
export function filesWithBytes(dir: string): SavedFile[] {
  const out: SavedFile[] = [];
  const walk = (d: string) => {
    for (const name of readdirSync(d)) {
      const p = join(d, name);
      const st = statSync(p);
      if (st.isDirectory()) walk(p);
      else out.push({ file: relative(dir, p), bytes: st.size });
    }
  };
  walk(dir);
  return out.sort((a, b) => a.file.localeCompare(b.file));
}

/** Sum of the sizes of every file under `dir`, in bytes. */
export function dirBytes(dir: string): number {
  return filesWithBytes(dir).reduce((a, f) => a + f.bytes, 0);
}

const num = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v);

function need<T>(v: T | undefined | null, file: string, what: string): T {
  if (v === undefined || v === null) throw new UserError(`${file}: ${what} not found`, { hint: 'the run did not finish this step; look at its run.log, then run the pipeline again' });
  return v;
}

/** Step names of the resolved pipeline by kind, in file order. */
function stepsByKind(runDir: string): Map<string, string[]> {
  const file = join(runDir, 'pipeline.resolved.json');
  if (!existsSync(file)) throw new UserError(`${runDir}: no pipeline.resolved.json: not a run folder`, { hint: 'pass a folder runs/<pipeline>/<timestamp>/ written by `peftkit run`' });
  const steps = (JSON.parse(readFileSync(file, 'utf8')) as { steps: Record<string, StepDecl> }).steps;
  const out = new Map<string, string[]>();
  for (const [name, s] of Object.entries(steps)) out.set(s.kind, [...(out.get(s.kind) ?? []), name]);
  return out;
}

/**
 * Seconds between the run.log lines "<kind> started" and "<kind> finished ..." of `step`
 * (their `timestamp` fields, ISO 8601).
 * @throws UserError naming run.log when either line is missing.
 */
export function stepSeconds(logRows: Record<string, unknown>[], step: string, kind: string, file: string): number {
  const at = (suffix: RegExp) => logRows.find((r) => r.step === step && typeof r.message === 'string' && suffix.test(r.message));
  const start = need(at(new RegExp(`^${kind} started$`)), file, `"${kind} started" of step "${step}"`);
  const end = need(at(new RegExp(`^${kind} finished`)), file, `"${kind} finished" of step "${step}"`);
  return (Date.parse(String(end.timestamp)) - Date.parse(String(start.timestamp))) / 1000;
}

/**
 * Reads a finished run folder of a fine-tuning pipeline (load, inject, train, evaluate with a
 * classification dataset and a reference corpus, export).
 * @throws UserError naming the file and what is missing when the run is incomplete.
 */
export function collectRun(runDir: string): MethodResult {
  const kinds = stepsByKind(runDir);
  const one = (kind: string) => need(kinds.get(kind)?.[0], join(runDir, 'pipeline.resolved.json'), `a step of kind "${kind}"`);
  const [load, inject, train, evaluate, exportStep] = ['load', 'inject', 'train', 'evaluate', 'export'].map(one);
  const pipeline = (JSON.parse(readFileSync(join(runDir, 'pipeline.resolved.json'), 'utf8')) as { name: string }).name;

  const metricsFile = join(runDir, 'metrics.jsonl');
  const metrics = readJsonLines(metricsFile);
  const rowOf = (step: string, has: string) => need(metrics.find((r) => r.pipeline_step === step && has in r), metricsFile, `the "${step}" row with ${has}`);
  const baseParams = Number(rowOf(load, 'num_parameters').num_parameters);
  const injected = rowOf(inject, 'trainable_params');
  const exported = rowOf(exportStep, 'adapter_bytes');
  const trainRows = metrics.filter((r) => r.pipeline_step === train && num(r.loss) && num(r.global_step));
  if (!trainRows.length) throw new UserError(`${metricsFile}: no train rows with a loss`, { hint: 'training logged nothing; set logging_steps no larger than the number of steps' });

  const logFile = join(runDir, 'run.log');
  const trainSeconds = stepSeconds(readJsonLines(logFile), train, 'train', logFile);
  let tokensSeen: number | null = null;
  const ckpts = join(runDir, train, 'checkpoints');
  if (existsSync(join(ckpts, 'latest'))) {
    const state = join(ckpts, readFileSync(join(ckpts, 'latest'), 'utf8').trim(), 'trainer_state.json');
    if (existsSync(state)) tokensSeen = Number((JSON.parse(readFileSync(state, 'utf8')) as { tokens_seen?: number }).tokens_seen ?? NaN);
    if (!num(tokensSeen)) tokensSeen = null;
  }
  const meanRate = trainRows.filter((r) => num(r.tokens_per_s)).reduce((a, r, _, all) => a + Number(r.tokens_per_s) / all.length, 0);

  const reportFile = join(runDir, evaluate, 'report.json');
  if (!existsSync(reportFile)) throw new UserError(`${reportFile} is missing`, { hint: 'the evaluate step did not finish; look at run.log' });
  const report = JSON.parse(readFileSync(reportFile, 'utf8')) as {
    examples: number;
    classification: { classes: string[] | null; positive_class: number | null } | null;
    rows: { metric: string; with_adapter: number | null; without_adapter: number | null }[];
  };
  const cls = report.classification;
  const positiveLabel = cls?.classes && cls.positive_class !== null ? (cls.classes[cls.positive_class] ?? String(cls.positive_class)) : String(cls?.positive_class ?? '?');
  const both = (metric: string): WithWithout => {
    const r = need(report.rows.find((x) => x.metric === metric), reportFile, `metric "${metric}"`);
    if (!num(r.with_adapter) || !num(r.without_adapter)) throw new UserError(`${reportFile}: metric "${metric}" lacks a value with or without the adapter`, { hint: 'keep the evaluate step\'s baselines on and give it a reference dataset' });
    return { with_adapter: r.with_adapter, without_adapter: r.without_adapter };
  };
  const majorityRow = (prefix: string) => need(report.rows.find((x) => x.metric.startsWith(prefix)), reportFile, `metric "${prefix} (always ...)"`);
  const majAcc = majorityRow('majority_class_accuracy');
  const majF1 = majorityRow('majority_class_f1');

  const exportDir = String(exported.path);
  if (!existsSync(exportDir)) throw new UserError(`${metricsFile}: the exported folder ${exportDir} does not exist any more`, { hint: 'run the pipeline again' });
  const savedFiles = filesWithBytes(exportDir);
  const savedBytes = savedFiles.reduce((a, f) => a + f.bytes, 0);
  const env = JSON.parse(readFileSync(join(runDir, 'environment.json'), 'utf8')) as { backend?: string };

  return {
    pipeline,
    method: String(injected.method),
    runDir,
    backend: env.backend ?? 'unknown',
    baseParams,
    trainableParams: Number(injected.trainable_params),
    allParamsReported: Number(injected.all_params),
    trainablePercentReported: Number(injected.trainable_percent),
    trainablePercentOfBase: (100 * Number(injected.trainable_params)) / baseParams,
    steps: Number(trainRows.at(-1)!.global_step),
    trainSeconds,
    tokensSeen,
    tokensPerSecond: tokensSeen !== null && trainSeconds > 0 ? tokensSeen / trainSeconds : meanRate,
    loss: trainRows.map((r) => ({ step: Number(r.global_step), loss: Number(r.loss) })),
    testExamples: report.examples,
    accuracy: both('accuracy'),
    precision: both('precision'),
    recall: both('recall'),
    f1: both('f1'),
    positiveLabel,
    majority: { label: /always "([^"]*)"/.exec(majAcc.metric)?.[1] ?? '?', accuracy: Number(majAcc.with_adapter), f1: Number(majF1.with_adapter) },
    referencePerplexity: both('reference_perplexity'),
    exportDir,
    exportFormat: String(exported.format ?? ''),
    savedBytes,
    savedFiles,
    savedWeightBytes: savedFiles.filter((f) => f.file.endsWith('.safetensors')).reduce((a, f) => a + f.bytes, 0),
  };
}
