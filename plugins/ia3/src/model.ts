/**
 * Injecting IA3 into a model, as HF PEFT's `IA3Model` (`peft/tuners/ia3/model.py`, with the
 * matching rules of `peft/tuners/tuners_utils.py`): walk the named modules, wrap the matching
 * linear layers in {@link Ia3Layer}s (feed-forward ones scaling their input), freeze the base.
 * The returned {@link Ia3AdapterHandle} saves and loads exactly HF PEFT's
 * `adapter_model.safetensors` keys and writes its `adapter_config.json` fields.
 */
import type * as tf from '@tensorflow/tfjs';
import { UserError, schemaIssues, type StepLogger } from '@peftkit/core';
import { Conv1D, Linear, foldModuleNames, fullMatch, getRngState, manualSeed, matchesNameList, setRngState, type AdapterHandle, type Module } from '@peftkit/models';
import {
  ALL_LINEAR,
  DEFAULT_FEEDFORWARD_MODULES,
  DEFAULT_TARGET_MODULES,
  assertValidConfig,
  ia3ConfigSchema,
  isFeedforward,
  resolveIa3Config,
  type Ia3Config,
  type ResolvedIa3Config,
} from './config.js';
import { Ia3Layer, isIa3Base } from './layer.js';

/** The prefix HF PEFT puts before every saved key (`PeftModel.base_model.model`). */
export const HF_PREFIX = 'base_model.model.';

/**
 * What IA3 can be injected into: any module tree; a `PreTrainedModel` of `@peftkit/models` adds
 * what `target_modules: null`, `"all-linear"` and the task type need.
 */
export type Ia3TargetModel = Module & {
  config?: { model_type?: string };
  task?: string;
  outputHeadNames?(): string[];
};

/** Options of {@link injectIa3}. */
export interface InjectIa3Options {
  /** The adapter's name (HF's `adapter_name`), `default` unless given. */
  adapterName?: string;
  /** Where warnings and notes go (they are also kept in `handle.warnings`). */
  logger?: StepLogger;
  /**
   * Seed for the vectors' random start (`init_ia3_weights: false` only). The shared random stream
   * of `@peftkit/models` is restored afterwards. Absent: drawn from the shared stream.
   */
  seed?: number;
}

/** Every module IA3 could wrap, by dotted name (outside existing IA3 layers). */
export function linearLayerNames(model: Module): string[] {
  return model.namedModules().filter(([k, m]) => k && (isIa3Base(m) || m instanceof Ia3Layer)).map(([k]) => k);
}

/**
 * Injects an IA3 adapter into `model` in place and returns its handle.
 *
 * Matching (HF PEFT's `check_target_module_exists`): `exclude_modules` wins; a list of
 * `target_modules` matches a module whose name equals an entry or ends with `.` + entry; a string
 * is a regular expression that must match the whole name; `"all-linear"` is every linear layer
 * but the output head(s); null is HF PEFT's default for `config.model_type`. A wrapped module is
 * feed-forward per {@link isFeedforward}. `fan_in_fan_out` is corrected per layer with HF's
 * warning. Then every base parameter is frozen; only the vectors train.
 *
 * @throws UserError when the config is invalid (naming the field), when nothing matches (listing
 *   the model's linear layers), when a matched module is not linear, when the adapter name is
 *   taken, when an existing IA3 layer would change between feed-forward and not, or for a
 *   sequence classifier (its new head would have to train as `modules_to_save`, which this plugin
 *   does not implement yet).
 */
export function injectIa3(model: Ia3TargetModel, config: Ia3Config = {}, opts: InjectIa3Options = {}): Ia3AdapterHandle {
  const adapterName = opts.adapterName ?? 'default';
  const given = structuredClone(config ?? {});
  const typeIssues = schemaIssues('IA3 config', '', ia3ConfigSchema, given);
  if (typeIssues.length) {
    throw new UserError(`IA3 config is invalid:\n${typeIssues.map((i) => `  ${i.pointer || '(config)'}: ${i.message}${i.hint ? ` (${i.hint})` : ''}`).join('\n')}`, { pointer: typeIssues[0].pointer, hint: typeIssues[0].hint });
  }
  assertValidConfig(given);
  const cfg = resolveIa3Config(given);
  const warnings: string[] = [];
  const warn = (m: string) => {
    warnings.push(m);
    opts.logger?.warn(m);
  };
  if (model.task === 'sequence-classification') {
    throw new UserError('IA3 on a sequence classifier needs its new head trained and saved in full (HF PEFT\'s modules_to_save), which @peftkit/ia3 does not implement yet', {
      hint: 'use the lora method (it trains the head as modules_to_save), or load the model with task causal-lm',
    });
  }
  const mods = model.namedModules();
  for (const [k, m] of mods) {
    if (m instanceof Ia3Layer && m.has(adapterName)) throw new UserError(`the model already has an adapter named "${adapterName}" (at ${k}); give the new one another name`);
  }
  const insideIa3 = (k: string) => mods.some(([w, m]) => w && m instanceof Ia3Layer && k.startsWith(`${w}.`));
  cfg.task_type ??= model.task === 'causal-lm' ? 'CAUSAL_LM' : null;

  // Targets and feed-forward modules: HF PEFT's `_prepare_adapter_config`.
  const modelType = model.config?.model_type;
  const heads = model.outputHeadNames?.() ?? [];
  let targets: string[] | string;
  if (cfg.target_modules == null) {
    const def = modelType ? DEFAULT_TARGET_MODULES[modelType] : undefined;
    if (!def) {
      throw new UserError(`target_modules is not set and there is no IA3 default for model_type ${JSON.stringify(modelType ?? null)}`, {
        pointer: '/target_modules',
        hint: `set target_modules (and feedforward_modules), e.g. "all-linear" or some of: ${foldModuleNames(linearLayerNames(model)) || '(the model has no linear layers)'}`,
      });
    }
    targets = [...def];
    cfg.target_modules = [...def];
  } else if (typeof cfg.target_modules === 'string' && cfg.target_modules.toLowerCase() === ALL_LINEAR) {
    const names = linearLayerNames(model).filter((k) => !heads.includes(k));
    targets = names;
    cfg.target_modules = [...new Set(names.map((k) => k.slice(k.lastIndexOf('.') + 1)))].sort();
  } else {
    targets = Array.isArray(cfg.target_modules) ? [...new Set(cfg.target_modules)] : cfg.target_modules;
    if (Array.isArray(cfg.target_modules)) cfg.target_modules = targets as string[];
  }
  if (cfg.feedforward_modules == null) {
    const def = modelType ? DEFAULT_FEEDFORWARD_MODULES[modelType] : undefined;
    if (!def) {
      throw new UserError(`feedforward_modules is not set and there is no IA3 default for model_type ${JSON.stringify(modelType ?? null)}`, {
        pointer: '/feedforward_modules',
        hint: 'set feedforward_modules to the target modules that should scale their input (the second layer of each MLP), or [] for none',
      });
    }
    cfg.feedforward_modules = [...def];
  }
  const feedforward = cfg.feedforward_modules;
  const excluded = (key: string) => {
    const ex = cfg.exclude_modules;
    if (ex == null) return false;
    return typeof ex === 'string' ? fullMatch(ex, key) : matchesNameList(ex, key);
  };
  const targeted = (key: string) => (typeof targets === 'string' ? fullMatch(targets, key) : matchesNameList(targets, key));

  const previousRng = getRngState();
  if (opts.seed !== undefined) manualSeed(opts.seed);
  const layers = new Map<string, Ia3Layer>();
  const created: string[] = [];
  let ffoWarned = false;
  try {
    for (const [key, m] of mods) {
      if (!key || insideIa3(key) || excluded(key) || !targeted(key)) continue;
      const ff = isFeedforward(feedforward, key);
      let layer: Ia3Layer;
      if (m instanceof Ia3Layer) {
        if (m.isFeedforward !== ff) {
          throw new UserError(`${key} already holds IA3 adapters that scale its ${m.isFeedforward ? 'input (feed-forward)' : 'output'}; adapter "${adapterName}" would scale its ${ff ? 'input' : 'output'}`, {
            pointer: '/feedforward_modules', hint: 'give every IA3 adapter of one model the same feedforward_modules',
          });
        }
        layer = m;
      } else if (isIa3Base(m)) layer = new Ia3Layer(m, ff, key);
      else {
        throw new UserError(`target_modules matched ${key}, a ${m.constructor.name}; IA3 wraps linear layers (Linear, GPT-2's Conv1D)`, {
          pointer: '/target_modules',
          hint: `name linear layers, e.g. some of: ${foldModuleNames(linearLayerNames(model))}`,
        });
      }
      // HF PEFT's `_create_new_module`: fan_in_fan_out follows the layer, with a warning.
      const conv1d = layer.baseLayer instanceof Conv1D;
      if (conv1d && !cfg.fan_in_fan_out) {
        if (!ffoWarned) warn('fan_in_fan_out is set to False but the target module is `Conv1D`. Setting fan_in_fan_out to True.');
        ffoWarned = true;
        cfg.fan_in_fan_out = true;
      } else if (!conv1d && cfg.fan_in_fan_out) {
        if (!ffoWarned) warn(`fan_in_fan_out is set to True but the target module is \`${layer.baseLayer instanceof Linear ? 'torch.nn.Linear' : layer.baseLayer.constructor.name}\`. Setting fan_in_fan_out to False.`);
        ffoWarned = true;
        cfg.fan_in_fan_out = false;
      }
      layer.addAdapter(adapterName, cfg.init_ia3_weights);
      if (!(m instanceof Ia3Layer)) {
        layer.train(m.training);
        model.setSubmodule(key, layer);
        created.push(key);
      }
      layers.set(key, layer);
    }
  } catch (e) {
    // Leave the model as it was.
    for (const [key, layer] of layers) {
      if (layer.has(adapterName)) layer.deleteAdapter(adapterName);
      if (created.includes(key)) model.setSubmodule(key, layer.baseLayer);
    }
    throw e;
  } finally {
    if (opts.seed !== undefined) setRngState(previousRng);
  }

  if (layers.size === 0) {
    const why = typeof targets === 'string' ? `the regular expression ${JSON.stringify(targets)} matched no module name in full` : `none of ${JSON.stringify(targets)} matched the end of a module name${cfg.exclude_modules != null ? ' (after exclude_modules)' : ''}`;
    throw new UserError(`IA3 found no module to wrap: ${why}. The model's linear layers: ${foldModuleNames(linearLayerNames(model)) || '(none)'}`, {
      pointer: '/target_modules',
      hint: 'use names from that list (matched against the end of the module name, e.g. "c_attn"), or "all-linear" for every linear layer but the output head',
    });
  }
  if (Array.isArray(targets) && typeof given.target_modules !== 'string') {
    const unused = targets.filter((t) => ![...layers.keys()].some((k) => k === t || k.endsWith(`.${t}`)));
    if (unused.length) warn(`target_modules entries that matched no module: ${unused.join(', ')}`);
  }
  const ffCount = [...layers.values()].filter((l) => l.isFeedforward).length;
  opts.logger?.info(`IA3: ${layers.size} layer(s) wrapped, ${ffCount} scaling their input (feed-forward), ${layers.size - ffCount} their output`);

  const handle = new Ia3AdapterHandle(model, adapterName, cfg, layers, warnings);
  handle.freezeBase();
  return handle;
}

/**
 * One IA3 adapter injected into a model. Saved keys are HF PEFT's:
 * `base_model.model.<module>.ia3_l`, [out, 1] for output scaling and [1, in] for feed-forward
 * modules (also on Conv1D).
 */
export class Ia3AdapterHandle implements AdapterHandle {
  readonly method = 'ia3';
  readonly peftType = 'IA3';
  private alive = true;
  private enabled = true;

  /**
   * @param config - the resolved config, with HF PEFT's adjustments (target and feed-forward
   *   modules resolved, fan_in_fan_out, task_type).
   * @param layers - wrapped modules by dotted name.
   * @param warnings - what injection warned about.
   */
  constructor(
    readonly model: Ia3TargetModel,
    readonly name: string,
    readonly config: ResolvedIa3Config & Record<string, unknown>,
    readonly layers: Map<string, Ia3Layer>,
    readonly warnings: string[] = [],
  ) {}

  private check(): void {
    if (!this.alive) throw new Error(`IA3 adapter "${this.name}" was unloaded or disposed`);
  }

  /** The tensors of {@link Ia3AdapterHandle.stateDict}, as [key, variable]. */
  trainableParameters(): [string, tf.Variable][] {
    this.check();
    return [...this.layers].map(([path, layer]) => [`${HF_PREFIX}${path}.ia3_l`, layer.vector(this.name)]);
  }

  /** HF PEFT's `get_peft_model_state_dict` for IA3: the keys of `adapter_model.safetensors`. Live tensors: do not dispose. */
  stateDict(): Map<string, tf.Tensor> {
    return new Map(this.trainableParameters());
  }

  /**
   * Loads tensors saved by {@link Ia3AdapterHandle.stateDict} or by HF PEFT. Keys may lack
   * `base_model.model.` and may carry the adapter name (`ia3_l.default`, as in
   * `named_parameters`). Nothing is assigned unless every tensor fits.
   * @throws UserError naming missing, unexpected and wrongly shaped tensors (name, expected, got).
   */
  loadStateDict(sd: Map<string, tf.Tensor>): void {
    this.check();
    const own = this.stateDict();
    const resolved = new Map<string, tf.Tensor>();
    const unexpected: string[] = [];
    for (const [key, t] of sd) {
      let k = key.startsWith(HF_PREFIX) ? key : HF_PREFIX + key;
      if (!own.has(k)) k = k.replace(/\.ia3_l\.[^.]+$/, '.ia3_l');
      if (own.has(k)) resolved.set(k, t);
      else unexpected.push(key);
    }
    const missing = [...own.keys()].filter((k) => !resolved.has(k));
    const mismatched: string[] = [];
    for (const [k, t] of resolved) {
      const target = own.get(k)!;
      if (target.shape.length !== t.shape.length || target.shape.some((d, i) => d !== t.shape[i])) {
        const swapped = t.shape.length === 2 && t.shape[0] === target.shape[1] && t.shape[1] === target.shape[0];
        mismatched.push(`${k}: expected [${target.shape.join(', ')}], got [${t.shape.join(', ')}]${swapped ? ' (the module is feed-forward in one and not in the other)' : ''}`);
      }
    }
    if (missing.length || unexpected.length || mismatched.length) {
      const parts = [
        mismatched.length ? `wrong shapes: ${mismatched.join('; ')}` : '',
        missing.length ? `missing tensors: ${missing.join(', ')}` : '',
        unexpected.length ? `tensors the model has no place for: ${unexpected.join(', ')}` : '',
      ].filter(Boolean);
      throw new UserError(`IA3 adapter "${this.name}" does not fit the model: ${parts.join('; ')}`, {
        hint: mismatched.length
          ? 'inject with the adapter\'s own feedforward_modules, on the base model it names in base_model_name_or_path'
          : 'inject with the adapter\'s own adapter_config.json (target_modules, feedforward_modules, exclude_modules) before loading its tensors',
      });
    }
    for (const [k, t] of resolved) (own.get(k) as tf.Variable).assign(t.dtype === 'float32' ? t : t.toFloat());
  }

  /**
   * The content of `adapter_config.json` with HF PEFT's IA3Config fields, without
   * `base_model_name_or_path`. `exclude_modules` (PEFT 0.14+) is written only when set, so that
   * older PEFT versions read the file otherwise.
   */
  adapterConfig(): Record<string, unknown> {
    const c = this.config;
    const out: Record<string, unknown> = {
      auto_mapping: null,
      fan_in_fan_out: c.fan_in_fan_out,
      feedforward_modules: c.feedforward_modules,
      inference_mode: true,
      init_ia3_weights: c.init_ia3_weights,
      modules_to_save: null,
      peft_type: 'IA3',
      revision: null,
      target_modules: c.target_modules,
      task_type: c.task_type,
    };
    if (c.exclude_modules != null) out.exclude_modules = c.exclude_modules;
    return structuredClone(out);
  }

  /** Whether the adapter is enabled. */
  get isEnabled(): boolean {
    return this.enabled;
  }

  /**
   * Turns the adapter on or off in every layer (off: those layers compute the base output; a
   * merged adapter is unmerged first) and sets its vectors' trainable flags, as HF's `set_adapter`.
   */
  setEnabled(enabled: boolean): void {
    if (!this.alive) return;
    this.enabled = enabled;
    for (const layer of this.layers.values()) {
      layer.setEnabled(this.name, enabled);
      layer.vector(this.name).trainable = enabled;
    }
  }

  /** Folds the adapter into the base weights (see {@link Ia3Layer.merge}); enables it if it was off. */
  merge(): void {
    this.check();
    if (!this.enabled) this.setEnabled(true);
    for (const layer of this.layers.values()) layer.merge(this.name);
  }

  /** Divides the merged adapter out of the base weights again (to within HF's 1e-8 tolerance, see {@link Ia3Layer.unmerge}). */
  unmerge(): void {
    this.check();
    for (const layer of this.layers.values()) layer.unmerge(this.name);
  }

  /**
   * Removes the adapter from the model and returns the model; with `merge`, its scaling is folded
   * into the base weights first (HF's `merge_and_unload`). Layers left without adapters get their
   * original module back. The handle is unusable afterwards.
   */
  unload(merge = false): Ia3TargetModel {
    this.check();
    for (const [path, layer] of this.layers) {
      if (merge) layer.merge(this.name);
      const left = layer.deleteAdapter(this.name, { keepMerged: merge });
      if (left === 0 && this.model.getSubmodule(path) === layer) this.model.setSubmodule(path, layer.baseLayer);
    }
    this.alive = false;
    return this.model;
  }

  /** HF PEFT's `merge_and_unload()`: the base model with this adapter folded into its weights. */
  mergeAndUnload(): Ia3TargetModel {
    return this.unload(true);
  }

  /** Freezes every parameter of the model except IA3 vectors (of any adapter): HF's `_mark_only_adapters_as_trainable`. */
  freezeBase(): void {
    const keep = new Set<tf.Variable>();
    for (const [, m] of this.model.namedModules()) if (m instanceof Ia3Layer) for (const [, v] of m.adapterParameters()) keep.add(v);
    for (const [, v] of this.model.namedParameters()) if (!keep.has(v)) v.trainable = false;
  }

  /** Removes the adapter from the model without merging and frees its vectors. */
  dispose(): void {
    if (this.alive) this.unload(false);
  }
}
