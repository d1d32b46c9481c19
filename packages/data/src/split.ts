import { deriveSeed, mulberry32, shuffleInPlace } from './random.js';
import { SPLIT_NAMES, type SplitName } from './types.js';

/** Fractions of rows per split; they must sum to 1. */
export type SplitFractions = Partial<Record<SplitName, number>>;

/**
 * Counts that sum to `n` and follow `weights` (largest remainder; ties go to the earlier entry).
 * @param weights non-negative, summing to 1.
 */
export function allocate(n: number, weights: number[]): number[] {
  const exact = weights.map((w) => w * n);
  const counts = exact.map((x) => Math.floor(x + 1e-9));
  let left = n - counts.reduce((a, b) => a + b, 0);
  const order = exact.map((x, i) => ({ i, r: x - counts[i] })).sort((a, b) => b.r - a.r || a.i - b.i);
  for (let k = 0; left > 0; k = (k + 1) % order.length, left--) counts[order[k].i]++;
  return counts;
}

/** Row indices grouped by stratum (one group when `strata` is absent), groups in sorted key order. */
function groups(n: number, strata?: readonly (string | number)[]): [string, number[]][] {
  const by = new Map<string, number[]>();
  for (let i = 0; i < n; i++) {
    const k = strata ? String(strata[i]) : '';
    let g = by.get(k);
    if (!g) by.set(k, (g = []));
    g.push(i);
  }
  return [...by.entries()].sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
}

/**
 * Splits rows `0 .. n-1` by fractions, deterministically for a seed: each stratum (label) is
 * shuffled with its own seeded generator and cut into consecutive runs, train first, so every
 * split holds about its fraction of every label. Indices in each split are ascending (file order).
 *
 * @param strata per-row label for a stratified split; absent: one stratum.
 * @throws Error when the fractions are negative or do not sum to 1.
 */
export function splitIndices(n: number, fractions: SplitFractions, seed: number, strata?: readonly (string | number)[]): Record<SplitName, number[]> {
  const names = SPLIT_NAMES.filter((s) => (fractions[s] ?? 0) > 0);
  const w = names.map((s) => fractions[s]!);
  const sum = SPLIT_NAMES.reduce((a, s) => a + (fractions[s] ?? 0), 0);
  if (SPLIT_NAMES.some((s) => (fractions[s] ?? 0) < 0) || Math.abs(sum - 1) > 1e-6) {
    throw new Error(`split fractions must be >= 0 and sum to 1, got ${JSON.stringify(fractions)} (sum ${sum})`);
  }
  const out: Record<SplitName, number[]> = { train: [], validation: [], test: [] };
  for (const [key, idx] of groups(n, strata)) {
    shuffleInPlace(idx, mulberry32(deriveSeed(seed, `split:${key}`)));
    const counts = allocate(idx.length, w);
    let at = 0;
    names.forEach((s, j) => {
      out[s].push(...idx.slice(at, at + counts[j]));
      at += counts[j];
    });
  }
  for (const s of SPLIT_NAMES) out[s].sort((a, b) => a - b);
  return out;
}

/**
 * A seeded subset of `k` of the rows `0 .. n-1` (all of them when k >= n), stratified like
 * {@link splitIndices} when `strata` is given; ascending.
 */
export function sampleIndices(n: number, k: number, seed: number, strata?: readonly (string | number)[]): number[] {
  if (k >= n) return Array.from({ length: n }, (_, i) => i);
  const gs = groups(n, strata);
  const counts = allocate(k, gs.map(([, g]) => g.length / n));
  const out: number[] = [];
  gs.forEach(([key, idx], j) => {
    shuffleInPlace(idx, mulberry32(deriveSeed(seed, `sample:${key}`)));
    out.push(...idx.slice(0, counts[j]));
  });
  return out.sort((a, b) => a - b);
}
