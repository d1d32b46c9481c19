/** Counting the reads of tensor values back to the host, for tests that a loop does not wait on the device. */
import * as tf from '@tensorflow/tfjs';

/** A running count of host reads; `stop()` puts the engine's methods back. */
export interface HostReadCounter {
  /** Reads so far (`data()`, `dataSync()`, `array()`, `bytes()`... each is one engine read). */
  readonly count: number;
  stop(): void;
}

/**
 * Counts every read of a tensor's values to the host, by wrapping the engine's `read` and `readSync`
 * (every `Tensor.data`/`dataSync`/`array`/`bytes` goes through one of them exactly once; the backend's
 * own `read` may call its `readSync`, so the engine is the level where each read counts once).
 */
export function countHostReads(): HostReadCounter {
  const engine = tf.engine() as unknown as { read: (id: object) => Promise<unknown>; readSync: (id: object) => unknown };
  const read = engine.read;
  const readSync = engine.readSync;
  let count = 0;
  engine.read = function (id) {
    count++;
    return read.call(this, id);
  };
  engine.readSync = function (id) {
    count++;
    return readSync.call(this, id);
  };
  return {
    get count() {
      return count;
    },
    stop() {
      engine.read = read;
      engine.readSync = readSync;
    },
  };
}
