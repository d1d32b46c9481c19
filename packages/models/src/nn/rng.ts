/**
 * Seeded randomness for everything peftkit draws (initialisation, dropout masks, shuffles), so that
 * the same seed on the same backend gives the same run.
 *
 * tfjs ops that take a `seed` (randomNormal, randomUniform, dropout) get one from {@link nextSeed};
 * the stream is a mulberry32 generator over a 32-bit state that checkpoints can save and restore.
 */
let state = 42 >>> 0;

/** Resets the stream. */
export function manualSeed(seed: number): void {
  state = seed >>> 0;
}

/** The generator's state, for checkpoints. */
export function getRngState(): number {
  return state;
}

/** Restores a state returned by {@link getRngState}. */
export function setRngState(s: number): void {
  state = s >>> 0;
}

/** A uniform float in [0, 1) (mulberry32). */
export function random(): number {
  state = (state + 0x6d2b79f5) >>> 0;
  let t = state;
  t = Math.imul(t ^ (t >>> 15), t | 1);
  t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
}

/** An integer seed in [0, 2^31) for a tfjs random op. */
export function nextSeed(): number {
  return Math.floor(random() * 2147483648);
}
