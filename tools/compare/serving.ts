/**
 * Serving N tasks: one base with N adapters against N fully fine-tuned copies, in memory and on disk.
 *
 * Memory is measured, not assumed, as tools/bench/multi-adapter.ts does: `tf.memory().numBytes`
 * (bytes of live tensors) before and after loading the base, then before and after loading the
 * exported adapter N times under different names with `loadAdapters` (@peftkit/models), on a fresh
 * base for each N. N full copies are N `loadPretrained` calls of the exported full checkpoint. For a
 * base quantized to NF4 (QLoRA) the packed 4-bit codes live in JavaScript typed arrays, not in
 * tensors, so its memory is the tensors left after `quantizeModel` plus the `quantized_bytes` its
 * report counts. Disk is arithmetic on the measured folder sizes: base + N × adapter, or N × the
 * full checkpoint.
 */
import * as tf from '@tensorflow/tfjs';
import type { PeftMethod } from '@peftkit/core';
import { loadAdapters, loadPretrained, type LoadedModel } from '@peftkit/models';
import { houlsbyMethod, parallelAdapterMethod, pfeifferMethod } from '@peftkit/adapter';
import { loraMethod } from '@peftkit/lora';
import { prefixTuningMethod, promptTuningMethod } from '@peftkit/prefix-tuning';
import { quantizeModel, type QuantConfig } from '@peftkit/qlora';

/** The methods whose exported folders `loadAdapters` reads (QLoRA adapters are HF LoRA folders). */
export const SERVING_METHODS: readonly PeftMethod[] = [loraMethod, houlsbyMethod, pfeifferMethod, parallelAdapterMethod, prefixTuningMethod, promptTuningMethod];

/** One way of serving: an adapter folder loaded N times onto one base (optionally quantized first). */
export interface AdapterSetup {
  /** Label in the tables, e.g. `LoRA`. */
  label: string;
  /** The exported adapter folder. */
  adapterDir: string;
  /** Its bytes on disk (the export folder, measured). */
  adapterDiskBytes: number;
  /** Quantize the base's linear layers before loading the adapters (QLoRA). */
  quantize?: QuantConfig;
}

/** Measured memory of one setup. */
export interface MeasuredSetup {
  label: string;
  adapterDiskBytes: number;
  /** Bytes the base holds once loaded (and quantized, when the setup says so). */
  baseMemoryBytes: number;
  /** For each N: bytes added by loading the adapter N times (tf.memory delta). */
  added: { n: number; bytes: number }[];
  /** Why it could not be measured, when it could not. */
  error?: string;
}

/** Everything the serving table needs. */
export interface ServingMeasurement {
  counts: number[];
  /** Base checkpoint folder: bytes on disk, bytes of its tensors once loaded (float32). */
  baseDiskBytes: number;
  baseMemoryBytes: number;
  setups: MeasuredSetup[];
  /** N fully fine-tuned copies: one checkpoint's bytes on disk, and for each N the measured tensor bytes of N loaded copies. */
  full: { diskBytes: number; loaded: { n: number; bytes: number }[] } | null;
}

/** Bytes that `fn` leaves allocated in tensors (tf.memory().numBytes after − before). */
async function addedBytes<T>(fn: () => Promise<T>): Promise<{ value: T; bytes: number }> {
  const before = tf.memory().numBytes;
  const value = await fn();
  return { value, bytes: tf.memory().numBytes - before };
}

/**
 * Measures a base checkpoint with each setup's adapter loaded N times, for each N in `counts`, and
 * N loaded copies of a full checkpoint.
 * @param baseDir - the base model folder (HF checkpoint).
 * @param baseDiskBytes - its bytes on disk.
 * @param full - the fully fine-tuned checkpoint folder and its bytes, or null to skip.
 */
export async function measureServing(baseDir: string, baseDiskBytes: number, setups: AdapterSetup[], full: { dir: string; diskBytes: number } | null, counts: number[]): Promise<ServingMeasurement> {
  const { value: probe, bytes: baseMemoryBytes } = await addedBytes(() => loadPretrained(baseDir, { task: 'causal-lm', tokenizer: false }));
  probe.model.dispose();

  const measured: MeasuredSetup[] = [];
  for (const s of setups) {
    const m: MeasuredSetup = { label: s.label, adapterDiskBytes: s.adapterDiskBytes, baseMemoryBytes, added: [] };
    try {
      for (const n of counts) {
        let base: LoadedModel | undefined;
        try {
          const loaded = await addedBytes(async () => {
            const b = await loadPretrained(baseDir, { task: 'causal-lm', tokenizer: false });
            // The packed codes are typed arrays outside tfjs: count them from the report.
            const q = s.quantize ? quantizeModel(b.model, s.quantize).quantized_bytes : 0;
            return { b, q };
          });
          base = loaded.value.b;
          m.baseMemoryBytes = loaded.bytes + loaded.value.q;
          const names = Array.from({ length: n }, (_, i) => ({ name: `task${i}`, path: s.adapterDir }));
          const { bytes } = await addedBytes(() => loadAdapters(base!, names, SERVING_METHODS));
          m.added.push({ n, bytes });
        } finally {
          base?.model.dispose();
        }
      }
    } catch (e) {
      m.error = (e as Error).message.split('\n')[0];
    }
    measured.push(m);
  }

  let fullOut: ServingMeasurement['full'] = null;
  if (full) {
    fullOut = { diskBytes: full.diskBytes, loaded: [] };
    for (const n of counts) {
      const copies: LoadedModel[] = [];
      try {
        const { bytes } = await addedBytes(async () => {
          for (let i = 0; i < n; i++) copies.push(await loadPretrained(full.dir, { task: 'causal-lm', tokenizer: false }));
        });
        fullOut.loaded.push({ n, bytes });
      } finally {
        for (const c of copies) c.model.dispose();
      }
    }
  }
  return { counts, baseDiskBytes, baseMemoryBytes, setups: measured, full: fullOut };
}

/** One row of the serving table: a setup at one N. */
export interface ServingRow {
  setup: string;
  n: number;
  /** Bytes in memory: base + the N adapters' measured bytes, or N full copies' measured bytes. */
  memoryBytes: number;
  /** Bytes on disk: base + N × adapter, or N × full checkpoint. */
  diskBytes: number;
  /** Measured bytes per adapter (added / N); for full copies, per copy. */
  perTaskMemoryBytes: number;
}

/** The label of the full-copies rows. */
export const FULL_COPIES = 'full fine-tuning (N copies)';

/**
 * The serving table from a measurement: for each setup that was measured and each N, memory
 * (base + added) and disk (base + N × adapter); for full fine-tuning, the measured N copies and
 * N × checkpoint bytes.
 */
export function servingRows(m: ServingMeasurement): ServingRow[] {
  const rows: ServingRow[] = [];
  if (m.full) {
    for (const { n, bytes } of m.full.loaded) rows.push({ setup: FULL_COPIES, n, memoryBytes: bytes, diskBytes: n * m.full.diskBytes, perTaskMemoryBytes: bytes / n });
  }
  for (const s of m.setups) {
    if (s.error) continue;
    for (const { n, bytes } of s.added) rows.push({ setup: `one base + N ${s.label}`, n, memoryBytes: s.baseMemoryBytes + bytes, diskBytes: m.baseDiskBytes + n * s.adapterDiskBytes, perTaskMemoryBytes: bytes / n });
  }
  return rows;
}
