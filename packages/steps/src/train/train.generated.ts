/* Generated from packages/steps/src/train/train.schema.json by tools/typegen. Do not edit: change the schema and run `npm run typegen`. */

/**
 * Settings of the `train` step. Names and meanings follow Hugging Face's TrainingArguments where it has the setting.
 */
export interface TrainSettings {
  /**
   * Peak learning rate of AdamW (HF default 5e-5; LoRA usually wants 1e-4 to 3e-4).
   */
  learning_rate?: number;
  /**
   * Decoupled weight decay of AdamW (Loshchilov and Hutter 2019); not applied to biases and normalization weights, as HF Trainer.
   */
  weight_decay?: number;
  /**
   * AdamW's beta1 (first-moment decay).
   */
  adam_beta1?: number;
  /**
   * AdamW's beta2 (second-moment decay).
   */
  adam_beta2?: number;
  /**
   * AdamW's epsilon, added to the denominator.
   */
  adam_epsilon?: number;
  /**
   * Learning-rate schedule after the warmup, as HF's get_*_schedule_with_warmup: constant, linear decay to 0, or half-cosine decay to 0.
   */
  lr_scheduler_type?: 'constant' | 'constant_with_warmup' | 'linear' | 'cosine';
  /**
   * Optimizer steps of linear warmup from 0 to learning_rate; overrides warmup_ratio when above 0.
   */
  warmup_steps?: number;
  /**
   * Warmup as a fraction of the total optimizer steps (ceil(total * ratio)), used when warmup_steps is 0.
   */
  warmup_ratio?: number;
  /**
   * Examples per micro-batch (one forward/backward pass).
   */
  per_device_train_batch_size?: number;
  /**
   * Short name of per_device_train_batch_size; when set it wins.
   */
  batch_size?: number | null;
  /**
   * Examples per batch when computing the validation loss.
   */
  per_device_eval_batch_size?: number;
  /**
   * Micro-batches whose gradients are summed into one optimizer step; the loss is averaged over all their target tokens (as HF Trainer since 4.46), so N micro-batches of size B equal one batch of N*B.
   */
  gradient_accumulation_steps?: number;
  /**
   * Recompute each transformer block in the backward pass instead of keeping its activations (transformers' `gradient_checkpointing_enable()`): the forward pass keeps only each block's input, at the cost of about one more forward pass per step. Works with a frozen base (no `enable_input_require_grads` needed); dropout draws the same masks in the recomputation.
   */
  gradient_checkpointing?: boolean;
  /**
   * Clip the global L2 norm of the gradients to this value (torch.nn.utils.clip_grad_norm_); 0 disables clipping.
   */
  max_grad_norm?: number;
  /**
   * Passes over the training split; fractions allowed. Ignored when max_steps is above 0.
   */
  num_train_epochs?: number;
  /**
   * Total optimizer steps; when above 0 it overrides num_train_epochs (the data is cycled as needed).
   */
  max_steps?: number;
  /**
   * Compute the validation loss every eval_steps optimizer steps (needs a validation split); null: only once, at the end.
   */
  eval_steps?: number | null;
  /**
   * Record a metrics row (loss averaged since the last row, lr, grad_norm, tokens/s) every logging_steps optimizer steps.
   */
  logging_steps?: number;
  /**
   * Write a checkpoint every save_steps optimizer steps (0: only at the end and on interruption). Checkpoints go to <step folder>/checkpoints/step-N/; --resume continues from the latest.
   */
  save_steps?: number;
  /**
   * Keep at most this many checkpoints, deleting the oldest; null keeps all. The latest one is never deleted.
   */
  save_total_limit?: number | null;
  /**
   * Stop when the validation loss has not improved for this many evaluations (HF EarlyStoppingCallback); needs eval_steps. null: no early stopping.
   */
  early_stopping_patience?: number | null;
  /**
   * How much the validation loss must drop to count as an improvement.
   */
  early_stopping_threshold?: number;
  /**
   * Training objective: next-token cross-entropy on labels != -100 (shifted, as HF) or one cross-entropy per sequence on the class label. auto: from the model's head.
   */
  task?: 'auto' | 'causal-lm' | 'sequence-classification';
  /**
   * Stop with a clear message when memory in use (live tensors; on WASM also the heap) exceeds this many MiB. null: 3584 on WASM (7/8 of its 4 GiB heap), no limit elsewhere.
   */
  max_memory_mb?: number | null;
  /**
   * Seed of the data order and dropout; null: the pipeline's seed.
   */
  seed?: number | null;
  /**
   * Drop the last incomplete batch of each epoch.
   */
  dataloader_drop_last?: boolean;
}
