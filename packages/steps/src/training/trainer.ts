import * as tf from '@tensorflow/tfjs';
import { UserError, validatorFor, type StepLogger } from '@peftkit/core';
import type { Batch, Dataset } from '@peftkit/data';
import { LayerNorm, RMSNorm, getRngState, manualSeed, readToHost, setRngState, type PeftModel } from '@peftkit/models';
import schema from '../train/train.schema.json' with { type: 'json' };
import type { TrainSettings } from '../train/train.generated.js';
import { AdamW } from './adamw.js';
import { batchNllSum, targetCount, tokenCount } from './batches.js';
import { disposeCheckpoint, latestCheckpointFolder, loadCheckpoint, saveCheckpoint, type TrainerState } from './checkpoints.js';
import { clipGradNorm } from './clip.js';
import { splitLoss } from './evaluation.js';
import type { TrainingTask } from './losses.js';
import { checkMemory, defaultMemoryLimitMb, heapExhaustedError } from './memory.js';
import { TrainProgress } from './progress.js';
import { lrMultiplier, warmupStepsFor } from './schedules.js';

/** {@link TrainSettings} with every default filled in. */
export type ResolvedTrainSettings = Required<TrainSettings>;

/** Fills in the schema's defaults (on a copy). @throws UserError listing schema violations. */
export function resolveTrainSettings(settings: TrainSettings = {}): ResolvedTrainSettings {
  const s = structuredClone(settings);
  const validate = validatorFor(schema);
  if (!validate(s)) throw new UserError(`invalid train settings: ${(validate.errors ?? []).map((e) => `${e.instancePath || '/'} ${e.message}`).join('; ')}`);
  return s as ResolvedTrainSettings;
}

/** Everything the loop needs from its surroundings (a step context, or a test). */
export interface TrainEnv {
  /** Folder of `step-N/` checkpoints and the `latest` pointer. */
  checkpointDir: string;
  /** Continue from the latest checkpoint in `checkpointDir`, when there is one. */
  resume: boolean;
  /** When aborted, a checkpoint is written and the loop returns. */
  signal: AbortSignal;
  logger: StepLogger;
  recordMetrics(row: Record<string, unknown>): void;
  /** The pipeline's seed (used when `settings.seed` is null). */
  seed: number;
  /** The tfjs backend name (for the memory guard's default). */
  backend: string;
  /** Show a progress bar; default: whether stdout is a terminal. */
  progressBar?: boolean;
}

/** What a training run did. */
export interface TrainResult {
  /** Optimizer steps done in total (including those before a resume). */
  globalStep: number;
  /** Steps the run was planned for. */
  totalSteps: number;
  task: TrainingTask;
  /** The loss of every optimizer step (mean over its target tokens), from step 1. */
  lossHistory: number[];
  /** Logged rows: `{global_step, loss, lr, grad_norm, tokens_per_s, epoch}` and `{global_step, eval_loss}`. */
  logHistory: Record<string, number>[];
  /** Stopped by the abort signal (a checkpoint was written). */
  interrupted: boolean;
  /** Stopped by early stopping. */
  earlyStopped: boolean;
  /** The last checkpoint folder written or resumed from. */
  checkpoint?: string;
}

/** Which objective: the setting, or the model's head when `auto`. */
export function resolveTask(setting: TrainSettings['task'], model: PeftModel): TrainingTask {
  if (setting && setting !== 'auto') return setting;
  return model.base.model.task === 'sequence-classification' ? 'sequence-classification' : 'causal-lm';
}

// HF Trainer's `get_decay_parameter_names`: no decay for biases and normalization layers.
const NO_DECAY_NAME = /(^|\.)bias$|layernorm|rmsnorm|(^|\.)norm($|\.)|_norm($|\.)|(^|\.)ln_[^.]*\./i;

function noDecayFor(model: PeftModel): (name: string) => boolean {
  const base = model.base.model;
  return (name) => {
    if (NO_DECAY_NAME.test(name)) return true;
    const path = name.replace(/^base_model\.model\./, '').split('.').slice(0, -1).join('.');
    const m = base.getSubmodule(path);
    return m instanceof LayerNorm || m instanceof RMSNorm;
  };
}

/** A seed for dropout masks distinct from the initialisation's stream. */
function trainingSeed(seed: number): number {
  return (Math.imul(seed ^ 0x74726169, 0x9e3779b1) >>> 0) ^ 0x6e;
}

const nextTick = () => new Promise<void>((r) => setImmediate(r));

/** One optimizer step's figures, kept on the device until the next read (see {@link runTraining}). */
interface PendingStep {
  step: number;
  /** The step's learning rate (for the error message). */
  lr: number;
  /** Each micro-batch's `Σ NLL / N`, in order (their sum is the step's loss); none for a step without targets. */
  losses: tf.Scalar[];
  /** The global gradient norm before clipping; absent for a step without targets (its norm is 0). */
  gradNorm?: tf.Scalar;
}

/**
 * Trains the active adapter(s) of `model` on the `train` split of `data` with AdamW, an LR schedule
 * with warmup, global-norm clipping and gradient accumulation (see {@link TrainSettings}), writing
 * checkpoints that {@link TrainEnv.resume} continues from exactly (same per-step losses).
 *
 * Each optimizer step: `gradient_accumulation_steps` micro-batches; each contributes
 * `Σ NLL / N` where N counts the target tokens of all the step's micro-batches (HF Trainer's
 * `num_items_in_batch`), so accumulation equals one big batch; gradients by `tf.variableGrads`
 * over the trainable parameters, summed, clipped on the device, then the AdamW update at
 * `learning_rate · lrMultiplier(step)`.
 *
 * No value is read back to the host inside a step: each step's micro-batch losses and gradient norm
 * stay device scalars and are read all at once (one read) at logging steps, before an evaluation, a
 * checkpoint (save_steps, interruption, the end) and when training ends, where `loss_history`,
 * `log_history` and the metrics rows need them. A read is a pipeline stall on WebGPU and keeps WASM
 * from overlapping work; the numbers are the same as reading every step (the step's loss is summed
 * on the host, in float64, in micro-batch order). The progress bar shows the last read loss between reads.
 *
 * @throws UserError when a loss or gradient norm is NaN or infinite, at the read that sees it (the
 *   next logging step at the latest), naming the first bad step; the last checkpoint is kept (no
 *   checkpoint is written after a bad step, but the model in memory has taken the updates made
 *   until the read). Also when memory exceeds the guard, or when there is nothing to train.
 */
export async function runTraining(model: PeftModel, data: Dataset, settings: TrainSettings, env: TrainEnv): Promise<TrainResult> {
  const s = resolveTrainSettings(settings);
  const task = resolveTask(s.task, model);
  const seed = s.seed ?? env.seed;
  const batchSize = s.batch_size ?? s.per_device_train_batch_size;
  const accum = s.gradient_accumulation_steps;
  const memLimit = s.max_memory_mb ?? defaultMemoryLimitMb(env.backend);
  const log = env.logger;

  const params = model.trainableParameters();
  if (!params.length) {
    const frozen = model.active.filter((n) => model.adapters.get(n)!.trainableParameters().length);
    throw new UserError(frozen.length ? `the model has no trainable parameters: adapter ${frozen.map((n) => `"${n}"`).join(', ')} is frozen` : 'the model has no trainable parameters', {
      hint: frozen.length ? 'set "is_trainable": true on the inject step that loads it' : 'inject a PEFT method (an `inject` step) before training',
    });
  }
  const vars = params.map(([, v]) => v);
  const nameOf = new Map(params.map(([n, v]) => [v.name, n]));
  const opt = new AdamW(params, { beta1: s.adam_beta1, beta2: s.adam_beta2, epsilon: s.adam_epsilon, weightDecay: s.weight_decay, noDecay: noDecayFor(model) });

  let state: TrainerState = { global_step: 0, epoch: 0, scheduler_last_step: 0, data_state: null, rng_state: 0, log_history: [], loss_history: [], best_eval_loss: null, patience_counter: 0, tokens_seen: 0 };
  let lastSaved = -1;
  let checkpoint: string | undefined;
  const resumeFrom = env.resume ? latestCheckpointFolder(env.checkpointDir) : undefined;
  if (resumeFrom) {
    const ck = loadCheckpoint(resumeFrom);
    try {
      const problems: string[] = [];
      for (const [n, v] of params) {
        const t = ck.weights.get(n);
        if (!t) problems.push(`${n} is missing`);
        else if (t.shape.join(',') !== v.shape.join(',')) problems.push(`${n} has shape [${t.shape}], the model [${v.shape}]`);
      }
      if (problems.length) throw new UserError(`checkpoint ${resumeFrom} does not fit the model: ${problems.join('; ')}`, { hint: 'the pipeline changed since it was written; run without --resume' });
      for (const [n, v] of params) v.assign(ck.weights.get(n)!);
      opt.setState(ck.optimizer);
      state = ck.state;
      setRngState(state.rng_state);
    } finally {
      disposeCheckpoint(ck);
    }
    lastSaved = state.global_step;
    checkpoint = resumeFrom;
    log.info(`resumed from ${resumeFrom} at step ${state.global_step}`);
  } else {
    manualSeed(trainingSeed(seed));
  }

  let iter: ReturnType<Dataset['batches']>;
  try {
    iter = data.batches('train', {
      batchSize, shuffle: true, seed, dropLast: s.dataloader_drop_last, epochs: Infinity,
      position: (state.data_state as Parameters<Dataset['batches']>[1]['position']) ?? undefined,
    });
  } catch (e) {
    if (!resumeFrom) throw e;
    throw new UserError(`cannot resume from ${resumeFrom}: ${(e as Error).message}`, { hint: 'resume with the batch size and dataset the checkpoint was written with, or run without --resume' });
  }
  const perEpoch = iter.batchesPerEpoch;
  if (perEpoch < 1) throw new UserError(`the train split has fewer examples than one batch (${batchSize}) and dataloader_drop_last is on`, { hint: 'lower per_device_train_batch_size or turn off dataloader_drop_last' });
  const updatesPerEpoch = Math.max(1, Math.floor(perEpoch / accum));
  const totalSteps = s.max_steps > 0 ? s.max_steps : Math.ceil(s.num_train_epochs * updatesPerEpoch);
  const sched = { type: s.lr_scheduler_type, warmupSteps: warmupStepsFor(totalSteps, s.warmup_steps, s.warmup_ratio), totalSteps };
  const hasValidation = !!data.splits.validation;
  if ((s.eval_steps || s.early_stopping_patience) && !hasValidation) log.warn('eval_steps / early_stopping_patience are set but the dataset has no validation split: no evaluation during training');
  if (s.early_stopping_patience && !s.eval_steps) log.warn('early_stopping_patience needs eval_steps: early stopping is off');
  log.info(`training ${task}: ${totalSteps} optimizer steps (${updatesPerEpoch} per epoch), batch ${batchSize} x ${accum} accumulation, ${params.length} trainable tensors, lr ${s.learning_rate} ${s.lr_scheduler_type} with ${sched.warmupSteps} warmup steps`);

  const save = async (reason: string) => {
    await readPending();
    state.rng_state = getRngState();
    state.data_state = iter.position;
    const optState = opt.getState();
    try {
      // Writing reads tensors synchronously; on WebGPU (Node) they must be downloaded first.
      await readToHost([...params.map(([, v]) => v), ...optState.expAvg.values(), ...optState.expAvgSq.values()]);
      checkpoint = saveCheckpoint(env.checkpointDir, { step: state.global_step, weights: new Map(params), optimizer: optState, state }, s.save_total_limit);
    } finally {
      for (const t of [...optState.expAvg.values(), ...optState.expAvgSq.values()]) t.dispose();
    }
    lastSaved = state.global_step;
    progress.log(`checkpoint (${reason}): ${checkpoint}`);
  };

  // Device scalars of the steps since the last read, and the last loss read (shown by the progress bar between reads).
  let pending: PendingStep[] = [];
  let shownLoss: number | undefined;
  let window = { loss: 0, steps: 0, tokens: 0, t0: performance.now() };
  /**
   * Reads every pending step's figures in one read; appends the steps' losses to `loss_history` and
   * the window in step order (each step's loss summed over its micro-batches as a float64, as before).
   * @returns the last step's gradient norm (0 when none is pending).
   * @throws UserError at the first step with a non-finite loss or gradient norm.
   */
  const readPending = async (): Promise<number> => {
    const taken = pending;
    pending = [];
    const scalars = taken.flatMap((p) => (p.gradNorm ? [...p.losses, p.gradNorm] : p.losses));
    let values: Float32Array | undefined;
    try {
      if (scalars.length) {
        const all = tf.tidy(() => tf.stack(scalars));
        try {
          values = (await all.data()) as Float32Array;
        } finally {
          all.dispose();
        }
      }
    } finally {
      for (const t of scalars) t.dispose();
    }
    let k = 0;
    let gradNorm = 0;
    for (const p of taken) {
      let loss = 0;
      for (let i = 0; i < p.losses.length; i++) {
        const v = values![k++];
        if (!Number.isFinite(v)) throw nonFinite('loss', v, p.step, p.lr, checkpoint, state.global_step);
        loss += v;
      }
      gradNorm = p.gradNorm ? values![k++] : 0;
      if (!Number.isFinite(gradNorm)) throw nonFinite('gradient norm', gradNorm, p.step, p.lr, checkpoint, state.global_step);
      state.loss_history.push(loss);
      window.loss += loss;
    }
    return gradNorm;
  };
  const disposePending = () => {
    for (const p of pending) for (const t of [...p.losses, ...(p.gradNorm ? [p.gradNorm] : [])]) t.dispose();
    pending = [];
  };

  const evaluate = async () => {
    await readPending();
    const { loss } = await splitLoss(model, data, 'validation', s.per_device_eval_batch_size, task);
    const row = { global_step: state.global_step, eval_loss: loss };
    state.log_history.push(row);
    env.recordMetrics(row);
    progress.log(`step ${state.global_step}: eval_loss ${loss.toFixed(4)}`);
    return loss;
  };

  const progress = new TrainProgress(totalSteps, s.logging_steps, log, state.global_step, env.progressBar);
  let interrupted = false;
  let earlyStopped = false;
  model.base.model.train();
  const stacks = s.gradient_checkpointing ? model.base.model.gradientCheckpointingEnable(true) : 0;
  if (s.gradient_checkpointing) {
    if (stacks) log.info('gradient checkpointing: each block keeps only its input and is recomputed in the backward pass');
    else log.warn('gradient_checkpointing is on but the model has no stack of blocks to checkpoint');
  }
  try {
    while (state.global_step < totalSteps) {
      await nextTick(); // lets a SIGINT handler abort the signal
      if (env.signal.aborted) {
        interrupted = true;
        break;
      }
      const step = state.global_step + 1;
      const micro: Batch[] = [];
      for (let i = 0; i < accum; i++) micro.push(iter.next().value as Batch);
      const n = micro.reduce((a, b) => a + targetCount(b, task, model), 0);
      const tokens = micro.reduce((a, b) => a + tokenCount(b), 0);
      const lr = s.learning_rate * lrMultiplier(state.scheduler_last_step, sched);
      const done: PendingStep = { step, lr, losses: [] };
      pending.push(done);
      if (n === 0) {
        log.warn(`step ${step}: its batches have no target token (every label is -100); no update`);
      } else {
        const acc = new Map<string, tf.Tensor>();
        try {
          for (const b of micro) {
            const { value, grads } = tf.tidy(() => tf.variableGrads(() => tf.div(batchNllSum(model, b, task), n) as tf.Scalar, vars));
            done.losses.push(value);
            for (const [vn, g] of Object.entries(grads)) {
              if (!g) continue;
              const name = nameOf.get(vn)!;
              const prev = acc.get(name);
              if (prev) {
                acc.set(name, tf.add(prev, g));
                prev.dispose();
                g.dispose();
              } else acc.set(name, g);
            }
          }
          done.gradNorm = clipGradNorm(acc, s.max_grad_norm);
          opt.applyGradients(acc, lr);
        } catch (e) {
          throw heapExhaustedError(e, step) ?? e;
        } finally {
          for (const g of acc.values()) g.dispose();
        }
      }
      state.global_step = step;
      state.scheduler_last_step += 1;
      state.epoch = (iter.position.epoch * perEpoch + iter.position.batch) / perEpoch;
      state.tokens_seen += tokens;
      checkMemory(memLimit, step);

      window.steps += 1;
      window.tokens += tokens;
      if (step % s.logging_steps === 0 || step === totalSteps) {
        const gradNorm = await readPending();
        // Timed after the read, so the device has done the window's work.
        const elapsed = (performance.now() - window.t0) / 1000;
        const tokensPerSecond = elapsed > 0 ? window.tokens / elapsed : 0;
        // The bar and log lines show the loss averaged since the last logged step, as metrics.jsonl records it.
        shownLoss = window.loss / window.steps;
        progress.update({ step, loss: shownLoss, lr, tokensPerSecond });
        const row = { global_step: step, loss: shownLoss, lr, grad_norm: gradNorm, tokens_per_s: tokensPerSecond, epoch: state.epoch };
        state.log_history.push(row);
        env.recordMetrics(row);
        window = { loss: 0, steps: 0, tokens: 0, t0: performance.now() };
      } else {
        const elapsed = (performance.now() - window.t0) / 1000;
        progress.update({ step, loss: shownLoss, lr, tokensPerSecond: elapsed > 0 ? window.tokens / elapsed : 0 });
      }
      if (s.eval_steps && hasValidation && step % s.eval_steps === 0) {
        const evalLoss = await evaluate();
        if (s.early_stopping_patience) {
          const best = state.best_eval_loss;
          if (best === null || (evalLoss < best && Math.abs(evalLoss - best) > s.early_stopping_threshold)) {
            state.best_eval_loss = evalLoss;
            state.patience_counter = 0;
          } else if (++state.patience_counter >= s.early_stopping_patience) {
            earlyStopped = true;
            progress.log(`early stopping at step ${step}: eval_loss has not improved on ${state.best_eval_loss!.toFixed(4)} for ${state.patience_counter} evaluations`);
          }
        }
      }
      if (s.save_steps > 0 && step % s.save_steps === 0) await save(`every ${s.save_steps} steps`);
      if (earlyStopped) break;
    }
    if (!interrupted && !s.eval_steps && hasValidation && state.global_step > lastSaved) await evaluate();
    if (state.global_step > lastSaved && state.global_step > 0) await save(interrupted ? 'interrupted' : 'end of training');
    await readPending(); // normally empty here: every path above reads
  } finally {
    disposePending();
    progress.stop();
    opt.dispose();
    if (stacks) model.base.model.gradientCheckpointingEnable(false);
    model.base.model.eval();
  }
  if (interrupted) log.warn(`interrupted at step ${state.global_step}/${totalSteps}; continue with --resume (from ${checkpoint ?? 'the start'})`);
  return { globalStep: state.global_step, totalSteps, task, lossHistory: state.loss_history, logHistory: state.log_history, interrupted, earlyStopped, checkpoint };
}

/** The error for a non-finite loss or gradient norm of `step`, found by the read after step `readAt`. */
function nonFinite(what: string, value: number, step: number, lr: number, checkpoint: string | undefined, readAt: number): UserError {
  return new UserError(
    `the ${what} is ${value} at step ${step} (learning rate ${lr.toExponential(2)}): training stopped` +
      (readAt > step ? ` at step ${readAt}, where it was read (values are read at logging, evaluation and checkpoint steps). ` : '. ') +
      (checkpoint ? `The last good checkpoint is kept: ${checkpoint}` : 'No checkpoint was written before this step.'),
    { hint: 'lower learning_rate (e.g. by 10x), add warmup (warmup_ratio 0.03) and keep max_grad_norm at 1.0; then run again with --resume to continue from the last good checkpoint' },
  );
}
