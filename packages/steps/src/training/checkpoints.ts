import { existsSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { UserError, fsyncDir, writeFileAtomic, writeJsonAtomic } from '@peftkit/core';
import { readSafetensors, writeFolderAtomic, writeSafetensors } from '@peftkit/models';
import type { AdamWState } from './adamw.js';

/**
 * Training checkpoints, laid out like HF Trainer's `checkpoint-N/` folders but with safetensors
 * and JSON only (no pickles):
 *
 *     <dir>/step-N/model.safetensors       trainable weights, by their adapter names
 *     <dir>/step-N/optimizer.safetensors   AdamW moments: `exp_avg.<name>`, `exp_avg_sq.<name>`
 *     <dir>/step-N/trainer_state.json      step, scheduler position, data position, rng, log history
 *     <dir>/latest                         the name of the last complete checkpoint folder
 *
 * A checkpoint is written into a temporary folder, every file fsynced, then renamed into place;
 * `latest` is replaced atomically last. A crash leaves the previous checkpoint intact and pointed to.
 */

/** The non-tensor part of a checkpoint (`trainer_state.json`). */
export interface TrainerState {
  /** Optimizer updates done. */
  global_step: number;
  /** Fractional epochs done. */
  epoch: number;
  /** Updates the schedule has advanced (the next update uses multiplier `lrMultiplier(last_step)`). */
  scheduler_last_step: number;
  /** The training batch iterator's position (opaque to the checkpoint). */
  data_state: unknown;
  /** The seeded generator's state (`getRngState()` of @peftkit/models). */
  rng_state: number;
  /** Every logged row so far (step, loss, learning_rate, grad_norm, eval_loss, ...), as HF's `log_history`. */
  log_history: Record<string, number>[];
  /** The loss of every optimizer step so far, from step 1. */
  loss_history: number[];
  /** Early stopping: best validation loss and evaluations without improvement. */
  best_eval_loss: number | null;
  patience_counter: number;
  /** Tokens seen (for throughput reporting). */
  tokens_seen: number;
}

/** A checkpoint in memory. Tensors are owned by whoever holds this object. */
export interface Checkpoint {
  step: number;
  /** Trainable weights by name. */
  weights: Map<string, tf.Tensor>;
  optimizer: AdamWState;
  state: TrainerState;
  /** Folder it was read from (on load). */
  folder?: string;
}

const STATE_FILE = 'trainer_state.json';
const FOLDER = /^step-(\d+)$/;

/** Complete checkpoint folders in `dir` by step, ascending. */
export function listCheckpoints(dir: string): { step: number; folder: string }[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir)
    .map((n) => ({ n, m: FOLDER.exec(n) }))
    .filter((x) => x.m && existsSync(join(dir, x.n, STATE_FILE)))
    .map((x) => ({ step: Number(x.m![1]), folder: join(dir, x.n) }))
    .sort((a, b) => a.step - b.step);
}

/**
 * Writes a checkpoint atomically into `<dir>/step-<step>/`, points `latest` at it, then deletes the
 * oldest checkpoints beyond `totalLimit` (HF's `save_total_limit`; null keeps all). The checkpoint
 * just written is never deleted.
 * @returns the checkpoint's folder.
 */
export function saveCheckpoint(dir: string, ckpt: Checkpoint, totalLimit: number | null = null): string {
  const name = `step-${ckpt.step}`;
  const target = join(dir, name);
  // Its temporary and replaced folders are `.step-<n>.*`, which prune() clears after a crash.
  writeFolderAtomic(target, (tmp) => {
    writeSafetensors(join(tmp, 'model.safetensors'), ckpt.weights, { format: 'pt' });
    const opt = new Map<string, tf.Tensor>();
    for (const [n, t] of ckpt.optimizer.expAvg) opt.set(`exp_avg.${n}`, t);
    for (const [n, t] of ckpt.optimizer.expAvgSq) opt.set(`exp_avg_sq.${n}`, t);
    writeSafetensors(join(tmp, 'optimizer.safetensors'), opt, { step: String(ckpt.optimizer.step) });
    // The state file is written last: its presence marks a complete checkpoint.
    writeJsonAtomic(join(tmp, STATE_FILE), ckpt.state);
  });
  writeFileAtomic(join(dir, 'latest'), name + '\n');
  fsyncDir(dir);
  prune(dir, totalLimit, name);
  return target;
}

/** Deletes the oldest complete checkpoints beyond `limit`, never `keep`; and leftover temporary folders. */
function prune(dir: string, limit: number | null, keep: string): void {
  for (const n of readdirSync(dir)) if (n.startsWith('.step-')) rmSync(join(dir, n), { recursive: true, force: true });
  if (limit == null) return;
  const all = listCheckpoints(dir);
  const excess = all.length - Math.max(1, limit);
  for (const c of all.slice(0, Math.max(0, excess))) {
    if (c.folder.endsWith(`/${keep}`)) continue;
    rmSync(c.folder, { recursive: true, force: true });
  }
}

/** The folder `latest` names, else the newest complete checkpoint, else undefined. */
export function latestCheckpointFolder(dir: string): string | undefined {
  const pointer = join(dir, 'latest');
  if (existsSync(pointer)) {
    const name = readFileSync(pointer, 'utf8').trim();
    if (FOLDER.test(name) && existsSync(join(dir, name, STATE_FILE))) return join(dir, name);
  }
  return listCheckpoints(dir).at(-1)?.folder;
}

/**
 * Reads a checkpoint folder written by {@link saveCheckpoint}. The caller disposes the tensors.
 * @throws UserError naming the folder when a file is missing or unreadable.
 */
export function loadCheckpoint(folder: string): Checkpoint {
  const stateFile = join(folder, STATE_FILE);
  let state: TrainerState;
  try {
    state = JSON.parse(readFileSync(stateFile, 'utf8'));
  } catch (e) {
    throw new UserError(`cannot read the checkpoint ${stateFile}: ${(e as Error).message}`, { file: stateFile, hint: 'delete the checkpoint folder to resume from an earlier one, or run without --resume' });
  }
  const weights = readSafetensors(join(folder, 'model.safetensors')).tensors;
  const { tensors, metadata } = readSafetensors(join(folder, 'optimizer.safetensors'));
  const expAvg = new Map<string, tf.Tensor>();
  const expAvgSq = new Map<string, tf.Tensor>();
  for (const [k, t] of tensors) {
    if (k.startsWith('exp_avg_sq.')) expAvgSq.set(k.slice('exp_avg_sq.'.length), t);
    else if (k.startsWith('exp_avg.')) expAvg.set(k.slice('exp_avg.'.length), t);
    else t.dispose();
  }
  return { step: state.global_step, weights, optimizer: { step: Number(metadata.step ?? state.global_step), expAvg, expAvgSq }, state, folder };
}

/** Disposes a checkpoint's tensors. */
export function disposeCheckpoint(c: Checkpoint): void {
  for (const t of c.weights.values()) t.dispose();
  for (const t of c.optimizer.expAvg.values()) t.dispose();
  for (const t of c.optimizer.expAvgSq.values()) t.dispose();
}
