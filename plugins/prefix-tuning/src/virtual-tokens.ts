/**
 * What prefix tuning and prompt tuning share: P virtual positions in front of the real ones. Both
 * extend the attention mask with P ones in front, shift given position ids by P, recognise a
 * generation cache that already holds the virtual positions, and free what they made for one
 * forward pass once it is done. HF PEFT does the same in `PeftModelForCausalLM.forward` and
 * `prepare_inputs_for_generation` (peft/peft_model.py).
 */
import * as tf from '@tensorflow/tfjs';
import { UserError, type PeftMethod } from '@peftkit/core';
import { manualSeed, type AdapterHandle, type LoadedModel, type ModelInputs, type ModelOutput, type PreTrainedModel, type Tokenizer } from '@peftkit/models';

/** What `inject` accepts: the model, or a loaded model or PEFT model holding it (then its tokenizer is used for TEXT init). */
export type InjectTarget = PreTrainedModel | LoadedModel | { base: LoadedModel };

/** The model inside `t`, with its tokenizer and source when known. */
export function resolveTarget(t: InjectTarget): { model: PreTrainedModel; tokenizer?: Tokenizer; source?: string } {
  const isModel = (x: unknown): x is PreTrainedModel => !!x && typeof (x as PreTrainedModel).dims === 'function' && typeof (x as PreTrainedModel).forward === 'function';
  if (isModel(t)) return { model: t, source: typeof t.config?._name_or_path === 'string' ? (t.config._name_or_path as string) : undefined };
  if ('model' in t && isModel(t.model)) return { model: t.model, tokenizer: t.tokenizer, source: t.source };
  if ('base' in t && isModel(t.base?.model)) return { model: t.base.model, tokenizer: t.base.tokenizer, source: t.base.source };
  throw new Error('inject expects a PreTrainedModel from @peftkit/models (or a LoadedModel / PeftModel holding one)');
}

/** A problem in a method's config, as `PeftMethod.validateConfig` reports it (pointer relative to the config). */
export type ConfigIssue = ReturnType<NonNullable<PeftMethod['validateConfig']>>[number];

/** The check both methods' configs need beyond the schema: one transformer submodule (peftkit has no encoder-decoder models). */
export function promptLearningIssues(config: { num_transformer_submodules?: number | null }): ConfigIssue[] {
  const n = config.num_transformer_submodules;
  if (n === undefined || n === null || n === 1) return [];
  return [{ pointer: '/num_transformer_submodules', message: `num_transformer_submodules ${n} is for encoder-decoder models, which peftkit does not have`, hint: 'use 1 (or leave it null)' }];
}

/**
 * What both methods' `inject` begins with: the config checked (its first issue thrown), the model
 * found in `target`, the config's nulls filled from the model, then the seed set (when given) so that
 * what `inject` draws next is reproducible.
 * @throws UserError `<method>: <pointer>: <message>` for the first issue `validate` finds, and what `resolve` throws
 */
export function beginInject<C, R>(
  method: string,
  target: InjectTarget,
  config: C,
  validate: (config: C) => ConfigIssue[],
  resolve: (config: C, model: PreTrainedModel) => R,
  seed: number | undefined,
): { model: PreTrainedModel; tokenizer?: Tokenizer; resolved: R } {
  const issues = validate(config);
  if (issues.length) throw new UserError(`${method}: ${issues[0].pointer}: ${issues[0].message}`, { pointer: issues[0].pointer, hint: issues[0].hint });
  const { model, tokenizer } = resolveTarget(target);
  const resolved = resolve(config, model);
  if (seed !== undefined) manualSeed(seed);
  return { model, tokenizer, resolved };
}

/**
 * Refuses to train a prompt-learning method on a sequence classifier: its head (`score`,
 * `classifier`) is new and random, and peftkit's prefix and prompt tuning train only the virtual
 * tokens, so the head would stay at its random values (HF PEFT trains it through modules_to_save,
 * which these methods do not have here). Loading a saved adapter is not affected.
 * @throws UserError naming the task and what to use instead
 */
export function refuseSequenceClassification(method: string, target: InjectTarget): void {
  const { model } = resolveTarget(target);
  if (model.task !== 'sequence-classification') return;
  throw new UserError(`${method} cannot train a sequence-classification model: it trains only its virtual tokens, and the model's new classification head (${model.outputHeadNames().join(', ')}) would stay at its random initial values`, {
    hint: 'load the base as a causal LM and let the dataset score label words ("label_words": true), or use a method that trains the head with the adapter: lora, qlora, houlsby, pfeiffer, parallel-adapter',
  });
}

/** HF PEFT's task type for a model's task. */
export function taskTypeOf(model: PreTrainedModel): string {
  switch (model.task) {
    case 'causal-lm':
      return 'CAUSAL_LM';
    case 'sequence-classification':
      return 'SEQ_CLS';
    default:
      return 'FEATURE_EXTRACTION';
  }
}

/** Batch size of the inputs. @throws Error when neither inputIds nor inputsEmbeds is given. */
export function batchSize(inputs: ModelInputs): number {
  const x = inputs.inputIds ?? inputs.inputsEmbeds;
  if (!x) throw new Error('prompt learning needs inputIds or inputsEmbeds');
  return x.shape[0];
}

/** True when the inputs continue from a cache, which already holds the virtual positions. */
export function continuesFromCache(inputs: ModelInputs): boolean {
  return !!inputs.pastKeyValues && inputs.pastKeyValues.length > 0;
}

/**
 * The attention mask with P ones in front ([B, S] → [B, P + S]), as HF PEFT's
 * `torch.cat((prefix_attention_mask, attention_mask), dim=1)`; undefined stays undefined.
 */
export function extendAttentionMask(mask: tf.Tensor2D | undefined, P: number): tf.Tensor2D | undefined {
  if (!mask) return undefined;
  return tf.tidy(() => tf.concat([tf.ones([mask.shape[0], P], mask.dtype), mask], 1) as tf.Tensor2D);
}

/**
 * Position ids the caller gave (counting its own tokens from 0) moved behind the P virtual positions.
 * With `prepend`, the virtual positions 0 .. P-1 are put in front ([B, T] → [B, P + T]).
 */
export function shiftPositionIds(positionIds: tf.Tensor2D | undefined, P: number, prepend: boolean): tf.Tensor2D | undefined {
  if (!positionIds) return undefined;
  return tf.tidy(() => {
    const shifted = tf.add(positionIds.cast('int32'), P) as tf.Tensor2D;
    if (!prepend) return shifted;
    const virt = tf.tile(tf.range(0, P, 1, 'int32').reshape([1, P]), [positionIds.shape[0], 1]); // [B, P]
    return tf.concat([virt, shifted], 1) as tf.Tensor2D;
  });
}

/** Model config fields HF PEFT writes in every prompt-learning `adapter_config.json`. */
export interface PromptLearningCommon {
  num_virtual_tokens: number;
  token_dim: number;
  num_transformer_submodules: number;
  num_attention_heads: number;
  num_layers: number;
  task_type: string;
}

/**
 * The common part of a prompt-learning adapter handle: enabling, the per-pass bookkeeping of tensors
 * made by `prepareInputs` (freed in `postprocessOutput`), and what a subclass fills in.
 *
 * `prepareInputs` returns new inputs; when the inputs continue from a cache (generation after the
 * first step) it only extends the attention mask and shifts given position ids, because the cache
 * already holds the P virtual positions. Tensors it makes are freed by the matching
 * `postprocessOutput` ({@link PeftModel.forward} calls both); callers that call `prepareInputs`
 * themselves should call `postprocessOutput` too, or run inside `tf.tidy`.
 */
export abstract class PromptLearningHandle implements AdapterHandle {
  abstract readonly method: string;
  abstract readonly peftType: string;
  protected enabled = true;
  /** Tensors made by each pending `prepareInputs`, freed by its `postprocessOutput` (last in, first out). */
  private readonly pending: tf.Tensor[][] = [];

  constructor(
    public name: string,
    readonly model: PreTrainedModel,
    readonly numVirtualTokens: number,
  ) {}

  abstract get config(): Record<string, unknown>;
  abstract trainableParameters(): [string, tf.Variable][];
  abstract stateDict(): Map<string, tf.Tensor>;
  abstract loadStateDict(sd: Map<string, tf.Tensor>): void;
  abstract adapterConfig(): Record<string, unknown>;
  abstract dispose(): void;

  /** Adds the virtual positions to inputs that do not continue from a cache; `made` collects new tensors. */
  protected abstract prepareFresh(inputs: ModelInputs, made: tf.Tensor[]): ModelInputs;

  /** Removes what the virtual positions added to the outputs (prompt tuning: their logits); `free` collects the replaced tensors. */
  protected postprocessFresh(output: ModelOutput, _inputs: ModelInputs, _free: tf.Tensor[]): ModelOutput {
    return output;
  }

  setEnabled(enabled: boolean): void {
    this.enabled = enabled;
  }

  get isEnabled(): boolean {
    return this.enabled;
  }

  prepareInputs(inputs: ModelInputs): ModelInputs {
    const made: tf.Tensor[] = [];
    this.pending.push(made);
    if (!this.enabled) return inputs;
    const P = this.numVirtualTokens;
    if (continuesFromCache(inputs)) {
      const attentionMask = extendAttentionMask(inputs.attentionMask, P);
      const positionIds = shiftPositionIds(inputs.positionIds, P, false);
      for (const t of [attentionMask, positionIds]) if (t) made.push(t);
      return { ...inputs, attentionMask, positionIds };
    }
    return this.prepareFresh(inputs, made);
  }

  postprocessOutput(output: ModelOutput, inputs: ModelInputs): ModelOutput {
    const made = this.pending.pop() ?? [];
    const free: tf.Tensor[] = [];
    const out = this.enabled && !continuesFromCache(inputs) ? this.postprocessFresh(output, inputs, free) : output;
    // What the model returns is never among what we made: the model makes new tensors.
    const keep = new Set<tf.Tensor>([out.logits, out.lastHiddenState, out.leadingLogits, ...(out.pastKeyValues ?? []).flatMap((l) => [l.key, l.value])].filter((t): t is tf.Tensor => !!t));
    for (const t of [...made, ...free]) if (!keep.has(t)) t.dispose();
    return out;
  }
}
