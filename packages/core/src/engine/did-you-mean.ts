import { distance } from 'fastest-levenshtein';

/** The closest candidate within a third of the word's length (at least 2 edits), or undefined. */
export function didYouMean(word: string, candidates: Iterable<string>): string | undefined {
  let best: string | undefined;
  let bestD = Infinity;
  for (const c of candidates) {
    const d = distance(word.toLowerCase(), c.toLowerCase());
    if (d < bestD) [best, bestD] = [c, d];
  }
  return bestD <= Math.max(2, Math.floor(word.length / 3)) ? best : undefined;
}

/** `did you mean "x"? ` or the list of candidates, for error hints. */
export function suggest(word: string, candidates: string[]): string {
  const m = didYouMean(word, candidates);
  return m ? `did you mean "${m}"? Known: ${candidates.join(', ')}` : `known: ${candidates.join(', ')}`;
}
