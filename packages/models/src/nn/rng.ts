/**
 * Seeded randomness for everything peftkit draws (initialisation, dropout masks, shuffles), so that
 * the same seed on the same backend gives the same run.
 *
 * tfjs ops that take a `seed` (randomNormal, randomUniform) get one from {@link nextSeed}, dropout
 * masks a Philox key from {@link nextSeedPair};
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

/** mulberry32's constant step (Tommy Ettinger's generator): the state after `s`. */
const advance = (s: number): number => (s + 0x6d2b79f5) >>> 0;

/** mulberry32's output for an advanced 32-bit state: a uniform float in [0, 1). */
function output(s: number): number {
  let t = s;
  t = Math.imul(t ^ (t >>> 15), t | 1);
  t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
}

/** A uniform float in [0, 1) (mulberry32) from the global stream. */
export function random(): number {
  state = advance(state);
  return output(state);
}

/**
 * A private mulberry32 stream seeded with `seed` (32 bits): uniform floats in [0, 1), the same
 * sequence as {@link random} after `manualSeed(seed)`, without moving the global stream.
 */
export function mulberry32(seed: number): () => number {
  let s = seed >>> 0;
  return () => output((s = advance(s)));
}

/**
 * A Philox key (seed0, seed1) for the `PeftkitDropout` kernel, from one step of the global stream
 * (as {@link nextSeed} takes one): seed0 is mulberry32's 32-bit output, seed1 the advanced state
 * itself, so consecutive pairs differ in both words and a restored state gives the same pairs.
 */
export function nextSeedPair(): [number, number] {
  state = advance(state);
  return [Math.floor(output(state) * 4294967296) >>> 0, state];
}

/** An integer seed in [0, 2^31) for a tfjs random op. */
export function nextSeed(): number {
  return Math.floor(random() * 2147483648);
}
