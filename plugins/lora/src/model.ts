/**
 * Injecting LoRA into a model, as HF PEFT's `LoraModel` (`peft/tuners/lora/model.py`, with the
 * matching rules of `peft/tuners/tuners_utils.py`): walk the named modules, wrap the matching
 * linear layers in {@link LoraLayer}s, freeze the base, make `modules_to_save` trainable copies.
 * The returned {@link LoraAdapterHandle} saves and loads exactly HF PEFT's `adapter_model.safetensors`
 * keys and writes its `adapter_config.json` fields.
 */
import * as tf from '@tensorflow/tfjs';
import { UserError, schemaIssues, type StepLogger } from '@peftkit/core';
import { Conv1D, Embedding, Linear, Module, TiedLinear, foldModuleNames, getRngState, manualSeed, setRngState, type AdapterHandle } from '@peftkit/models';
import {
  ALL_LINEAR,
  DEFAULT_TARGET_MODULES,
  assertValidConfig,
  fullMatch,
  layerIndexOf,
  loraConfigSchema,
  matchesNameList,
  patternKeyFor,
  resolveLoraConfig,
  type LoraConfig,
  type ResolvedLoraConfig,
} from './config.js';
import { LoraEmbedding, LoraLayer, MergeError, isFanInFanOut, isLinearBase, type LinearBase } from './layer.js';
import { ModulesToSaveWrapper, cloneModule } from '@peftkit/models';
import { addWeightedLoraAdapter } from './weighted.js';

/** The prefix HF PEFT puts before every saved key (`PeftModel.base_model.model`). */
export const HF_PREFIX = 'base_model.model.';

/**
 * What LoRA can be injected into: any module tree; a `PreTrainedModel` of `@peftkit/models` adds
 * what `target_modules: null`, `"all-linear"` and SEQ_CLS need (`config.model_type`, `task`,
 * `outputHeadNames()`).
 */
export type LoraTargetModel = Module & {
  config?: { model_type?: string };
  task?: string;
  outputHeadNames?(): string[];
};

/** Options of {@link injectLora}. */
export interface InjectLoraOptions {
  /** The adapter's name (HF's `adapter_name`), `default` unless given. */
  adapterName?: string;
  /** Where warnings and notes go (they are also kept in `handle.warnings`). */
  logger?: StepLogger;
  /**
   * Seed for A's (and with `init_lora_weights: false`, B's) initialisation. The shared random
   * stream of `@peftkit/models` is restored afterwards, so injection does not shift later draws.
   * Absent: drawn from the shared stream.
   */
  seed?: number;
}

/** Trainable and total parameter counts (elements), as HF PEFT's `print_trainable_parameters`. */
export interface ParameterReport {
  trainable: number;
  total: number;
  /** 100 · trainable / total. */
  percent: number;
}

const isWrapper = (m: Module) => m instanceof LoraLayer || m instanceof LoraEmbedding || m instanceof ModulesToSaveWrapper;

/**
 * HF PEFT's `EMBEDDING_LAYER_NAMES` (peft/utils/constants.py): when a module of these names is a
 * LoRA target, `save_pretrained` also saves the wrapped embedding layers' base weights
 * (`<module>.base_layer.weight`, `save_embedding_layers="auto"` in peft/utils/save_and_load.py).
 */
export const EMBEDDING_LAYER_NAMES = ['embed_tokens', 'lm_head'];

/** Module names with their layer numbers folded (`transformer.h.N.attn.c_attn (12×)`), for messages: `foldModuleNames` of @peftkit/models. */
export const summarizeNames: (names: string[]) => string = foldModuleNames;

/** Every module LoRA could wrap, by dotted name (outside existing adapter wrappers). */
export function linearLayerNames(model: Module): string[] {
  const mods = model.namedModules();
  const wrappers = mods.filter(([k, m]) => k && isWrapper(m)).map(([k]) => k);
  return mods
    .filter(([k, m]) => k && !wrappers.some((w) => k.startsWith(`${w}.`)) && (isLinearBase(m) || m instanceof LoraLayer))
    .map(([k]) => k);
}

function taskTypeOf(model: LoraTargetModel): ResolvedLoraConfig['task_type'] {
  if (model.task === 'causal-lm') return 'CAUSAL_LM';
  if (model.task === 'sequence-classification') return 'SEQ_CLS';
  return null;
}

/**
 * Injects a LoRA adapter into `model` in place and returns its handle.
 *
 * Matching (HF PEFT's `check_target_module_exists`): `exclude_modules` wins; modules inside
 * `modules_to_save` are skipped; a list of `target_modules` matches a module whose name equals an
 * entry or ends with `.` + entry, restricted to `layers_to_transform` when set; a string is a
 * regular expression that must match the whole name; `"all-linear"` is every linear layer but the
 * output head(s). Per-module rank and alpha come from `rank_pattern` / `alpha_pattern`.
 *
 * Then every base parameter is frozen (biases per `bias`), the `modules_to_save` get trainable
 * copies, and A and B are trainable. A module that already carries LoRA adapters gets one more.
 *
 * @throws UserError when the config is invalid (naming the field), when nothing matches (listing
 *   the model's linear layers), when a matched module is not linear, or when the adapter name is taken.
 */
export function injectLora(model: LoraTargetModel, config: LoraConfig = {}, opts: InjectLoraOptions = {}): LoraAdapterHandle {
  const adapterName = opts.adapterName ?? 'default';
  const given = structuredClone(config ?? {});
  const typeIssues = schemaIssues('LoRA config', '', loraConfigSchema, given);
  if (typeIssues.length) {
    throw new UserError(`LoRA config is invalid:\n${typeIssues.map((i) => `  ${i.pointer || '(config)'}: ${i.message}${i.hint ? ` (${i.hint})` : ''}`).join('\n')}`, { pointer: typeIssues[0].pointer, hint: typeIssues[0].hint });
  }
  assertValidConfig(given);
  const cfg = resolveLoraConfig(given);
  const warnings: string[] = [];
  const warn = (m: string) => {
    warnings.push(m);
    opts.logger?.warn(m);
  };

  const mods = model.namedModules();
  const wrapperPaths = mods.filter(([k, m]) => k && isWrapper(m)).map(([k]) => k);
  for (const [k, m] of mods) {
    if ((m instanceof LoraLayer || m instanceof LoraEmbedding || m instanceof ModulesToSaveWrapper) && m.adapterNames().includes(adapterName)) {
      throw new UserError(`the model already has an adapter named "${adapterName}" (at ${k}); give the new one another name`);
    }
  }
  const insideWrapper = (k: string) => wrapperPaths.some((w) => k.startsWith(`${w}.`));

  cfg.task_type ??= taskTypeOf(model);
  const heads = model.outputHeadNames?.() ?? [];
  if (cfg.task_type === 'SEQ_CLS') {
    // HF PEFT's PeftModelForSequenceClassification trains the (new) head in full.
    const mts = cfg.modules_to_save ?? [];
    const added = heads.filter((h) => !mts.includes(h));
    if (added.length) {
      cfg.modules_to_save = [...mts, ...added];
      opts.logger?.info(`SEQ_CLS: training the classification head in full (modules_to_save += ${added.join(', ')})`);
    }
  }
  const modulesToSave = cfg.modules_to_save ?? [];

  // Which target names to match, and what to write as target_modules.
  let targets: string[] | string;
  if (cfg.target_modules == null) {
    const mt = model.config?.model_type;
    const def = mt ? DEFAULT_TARGET_MODULES[mt] : undefined;
    if (!def) {
      throw new UserError(`target_modules is not set and there is no default for model_type ${JSON.stringify(mt ?? null)}`, {
        pointer: '/target_modules',
        hint: `set target_modules, e.g. "all-linear" or some of: ${summarizeNames(linearLayerNames(model)) || '(the model has no linear layers)'}`,
      });
    }
    targets = [...def];
    cfg.target_modules = [...def];
  } else if (typeof cfg.target_modules === 'string' && cfg.target_modules.toLowerCase() === ALL_LINEAR) {
    const names = linearLayerNames(model).filter((k) => !heads.includes(k) && !matchesNameList(modulesToSave, k));
    targets = names;
    cfg.target_modules = [...new Set(names.map((k) => k.slice(k.lastIndexOf('.') + 1)))].sort();
  } else {
    targets = Array.isArray(cfg.target_modules) ? [...new Set(cfg.target_modules)] : cfg.target_modules;
    if (Array.isArray(cfg.target_modules)) cfg.target_modules = targets as string[];
  }

  const layerFilter = cfg.layers_to_transform;
  const inLayers = (key: string) => {
    if (layerFilter == null || (Array.isArray(layerFilter) && layerFilter.length === 0)) return true;
    const i = layerIndexOf(key, cfg.layers_pattern);
    return i !== undefined && (Array.isArray(layerFilter) ? layerFilter.includes(i) : layerFilter === i);
  };
  const excluded = (key: string) => {
    const ex = cfg.exclude_modules;
    if (ex == null) return false;
    return typeof ex === 'string' ? fullMatch(ex, key) : matchesNameList(ex, key);
  };
  // HF: `re.match(rf"(^|.*\.){m}($|\..*)", key)` for m in modules_to_save.
  const inModulesToSave = (key: string) => modulesToSave.some((m) => key === m || key.startsWith(`${m}.`) || key.endsWith(`.${m}`) || key.includes(`.${m}.`));
  const targeted = (key: string) => (typeof targets === 'string' ? fullMatch(targets, key) : matchesNameList(targets, key) && inLayers(key));

  const previousRng = getRngState();
  if (opts.seed !== undefined) manualSeed(opts.seed);
  const layers = new Map<string, LoraLayer>();
  const embeddings = new Map<string, LoraEmbedding>();
  const created: string[] = [];
  const usedPatterns = { rank_pattern: new Set<string>(), alpha_pattern: new Set<string>() };
  let ffoWarned = false;
  const specFor = (key: string) => {
    const rKey = patternKeyFor(cfg.rank_pattern, key);
    const aKey = patternKeyFor(cfg.alpha_pattern, key);
    if (rKey !== undefined) usedPatterns.rank_pattern.add(rKey);
    if (aKey !== undefined) usedPatterns.alpha_pattern.add(aKey);
    return {
      r: rKey !== undefined ? cfg.rank_pattern[rKey] : cfg.r,
      loraAlpha: aKey !== undefined ? cfg.alpha_pattern[aKey] : cfg.lora_alpha,
      loraDropout: cfg.lora_dropout,
      useRslora: cfg.use_rslora,
      init: cfg.init_lora_weights,
      useDora: cfg.use_dora,
    };
  };
  try {
    for (const [key, m] of mods) {
      if (!key || insideWrapper(key) || excluded(key) || inModulesToSave(key) || !targeted(key)) continue;
      if (m instanceof Embedding || m instanceof LoraEmbedding) {
        // HF PEFT's lora.Embedding: lora_embedding_A [r, vocab], lora_embedding_B [dim, r].
        const emb = m instanceof LoraEmbedding ? m : new LoraEmbedding(m, key);
        emb.addAdapter(adapterName, specFor(key));
        if (!(m instanceof LoraEmbedding)) {
          emb.train(m.training);
          model.setSubmodule(key, emb);
          created.push(key);
        }
        embeddings.set(key, emb);
        continue;
      }
      let layer: LoraLayer;
      if (m instanceof LoraLayer) layer = m;
      else if (isLinearBase(m)) layer = new LoraLayer(m, key);
      else if (m instanceof ModulesToSaveWrapper) continue;
      else {
        throw new UserError(`target_modules matched ${key}, a ${m.constructor.name}; LoRA wraps linear layers (Linear, GPT-2's Conv1D, or layers implementing inFeatures/outFeatures/denseWeight) and token embeddings`, {
          pointer: '/target_modules',
          hint: `name linear layers, e.g. some of: ${summarizeNames(linearLayerNames(model))}`,
        });
      }
      const base: LinearBase = layer.baseLayer;
      // null (the default): the layers' own value, silently. HF PEFT's default is False, so every
      // GPT-2 run there warns although the saved config then says true.
      if (cfg.fan_in_fan_out === null) cfg.fan_in_fan_out = isFanInFanOut(base);
      if (isFanInFanOut(base) && !cfg.fan_in_fan_out) {
        if (!ffoWarned) warn('fan_in_fan_out is set to False but the target module is `Conv1D`. Setting fan_in_fan_out to True.');
        ffoWarned = true;
        cfg.fan_in_fan_out = true;
      } else if (!isFanInFanOut(base) && cfg.fan_in_fan_out) {
        if (!ffoWarned) warn(`fan_in_fan_out is set to True but the target module is \`${base instanceof Linear ? 'torch.nn.Linear' : base.constructor.name}\`. Setting fan_in_fan_out to False.`);
        ffoWarned = true;
        cfg.fan_in_fan_out = false;
      }
      layer.addAdapter(adapterName, specFor(key));
      if (!(m instanceof LoraLayer)) {
        layer.train(m.training);
        model.setSubmodule(key, layer);
        created.push(key);
      }
      layers.set(key, layer);
    }
  } catch (e) {
    // Leave the model as it was.
    for (const [key, layer] of [...layers, ...embeddings]) {
      if (layer.has(adapterName)) layer.deleteAdapter(adapterName);
      if (created.includes(key)) model.setSubmodule(key, layer.baseLayer);
    }
    throw e;
  } finally {
    if (opts.seed !== undefined) setRngState(previousRng);
  }

  if (layers.size === 0 && embeddings.size === 0) {
    const linear = linearLayerNames(model);
    const why = typeof targets === 'string' ? `the regular expression ${JSON.stringify(targets)} matched no module name in full` : `none of ${JSON.stringify(targets)} matched the end of a module name${layerFilter != null ? ` in layers ${JSON.stringify(layerFilter)}` : ''}${cfg.exclude_modules != null ? ' (after exclude_modules)' : ''}${modulesToSave.length ? ' (modules in modules_to_save are never LoRA targets)' : ''}`;
    throw new UserError(`LoRA found no module to wrap: ${why}. The model's linear layers: ${summarizeNames(linear) || '(none)'}`, {
      pointer: '/target_modules',
      hint: `use names from that list (matched against the end of the module name${linear.length ? `, e.g. "${linear[0].split('.').pop()}"` : ''}), or "all-linear" for every linear layer but the output head`,
    });
  }
  if (Array.isArray(targets) && typeof given.target_modules !== 'string') {
    const unused = targets.filter((t) => ![...layers.keys(), ...embeddings.keys()].some((k) => k === t || k.endsWith(`.${t}`)));
    if (unused.length) warn(`target_modules entries that matched no module: ${unused.join(', ')}`);
  }
  for (const field of ['rank_pattern', 'alpha_pattern'] as const) {
    // HF PEFT applies a pattern silently or not at all; a key that matches no wrapped module is almost always a typo.
    const unused = Object.keys(cfg[field] ?? {}).filter((k) => !usedPatterns[field].has(k));
    if (unused.length) {
      warn(`${field} keys that matched no LoRA module (they change nothing): ${unused.map((k) => JSON.stringify(k)).join(', ')}; keys are regular expressions matched against the end of a wrapped module's name, e.g. "q_proj" or "layers\\.0\\.self_attn\\.q_proj"; wrapped: ${summarizeNames([...layers.keys(), ...embeddings.keys()])}`);
    }
  }

  // modules_to_save: trainable copies.
  const saved = new Map<string, ModulesToSaveWrapper>();
  if (modulesToSave.length) {
    const now = model.namedModules();
    const wrappersNow = now.filter(([k, m]) => k && isWrapper(m)).map(([k]) => k);
    for (const [key, m] of now) {
      if (!key || wrappersNow.some((w) => key.startsWith(`${w}.`)) || [...saved.keys()].some((s) => key.startsWith(`${s}.`))) continue;
      if (!matchesNameList(modulesToSave, key)) continue;
      if (m instanceof LoraLayer || m instanceof LoraEmbedding) throw new UserError(`${key} is both a LoRA target and in modules_to_save`, { pointer: '/modules_to_save', hint: 'remove it from one of the two' });
      const w = m instanceof ModulesToSaveWrapper ? m : new ModulesToSaveWrapper(m, key);
      if (!(m instanceof ModulesToSaveWrapper)) w.train(m.training);
      w.addAdapter(adapterName);
      if (!(m instanceof ModulesToSaveWrapper)) model.setSubmodule(key, w);
      saved.set(key, w);
    }
    const unused = modulesToSave.filter((n) => ![...saved.keys()].some((k) => k === n || k.endsWith(`.${n}`)));
    if (unused.length) opts.logger?.info(`modules_to_save entries that matched no module: ${unused.join(', ')}`);
  }

  const handle = new LoraAdapterHandle(model, adapterName, cfg, layers, saved, warnings, embeddings);
  handle.freezeBase();
  return handle;
}

/**
 * One LoRA adapter injected into a model: what training, saving, loading, merging and serving use.
 * Saved keys are HF PEFT's: `base_model.model.<module>.lora_A.weight` [r, in] and `.lora_B.weight`
 * [out, r] (also on Conv1D), on embeddings `<module>.lora_embedding_A` [r, vocab] and
 * `.lora_embedding_B` [dim, r], with DoRA `<module>.lora_magnitude_vector` [out] (no `.weight`, as
 * peft 0.21 writes it), `modules_to_save` under their own names, biases (with `bias` other than
 * "none") as `<module>.base_layer.bias` for wrapped layers and `<module>.bias` elsewhere. When an
 * `embed_tokens` / `lm_head` module is a target, the state dict also holds the wrapped input
 * embedding's (and a wrapped output head's) base weight, `<module>.base_layer.weight`, as HF's
 * `save_embedding_layers="auto"` saves it (that is how added tokens travel with an adapter).
 */
export class LoraAdapterHandle implements AdapterHandle {
  readonly method = 'lora';
  readonly peftType = 'LORA';
  private alive = true;
  private enabled = true;

  /**
   * @param config - the resolved config, with HF PEFT's adjustments (fan_in_fan_out, target_modules resolved, task_type).
   * @param layers - wrapped modules by dotted name.
   * @param saved - modules_to_save wrappers by dotted name.
   * @param warnings - what injection warned about.
   */
  constructor(
    readonly model: LoraTargetModel,
    readonly name: string,
    readonly config: ResolvedLoraConfig & Record<string, unknown>,
    readonly layers: Map<string, LoraLayer>,
    readonly saved: Map<string, ModulesToSaveWrapper>,
    readonly warnings: string[] = [],
    /** LoRA-wrapped embeddings by dotted name. */
    readonly embeddings: Map<string, LoraEmbedding> = new Map(),
  ) {}

  private check(): void {
    if (!this.alive) throw new Error(`LoRA adapter "${this.name}" was unloaded or disposed`);
  }

  /**
   * Biases trained with `bias` "all" / "lora_only": [saved key, variable]. HF PEFT's keys: a wrapped
   * layer's bias is `<module>.base_layer.bias` (its base sits under `base_layer` there).
   */
  private biasParameters(): [string, tf.Variable][] {
    if (this.config.bias === 'none') return [];
    const out: [string, tf.Variable][] = [];
    const own = new Set([...this.layers.values()]);
    const walk = (m: Module, path: string) => {
      const at = (name: string) => `${HF_PREFIX}${path ? `${path}.` : ''}${name}`;
      if (m instanceof LoraLayer) {
        if (m.bias && (this.config.bias === 'all' || own.has(m))) out.push([at('base_layer.bias'), m.bias]);
        return;
      }
      if (m instanceof ModulesToSaveWrapper) return; // saved whole with the adapter's copy
      const b = m.parameter('bias');
      if (b && this.config.bias === 'all') out.push([at('bias'), b]);
      for (const [n, c] of m.children()) walk(c, path ? `${path}.${n}` : n);
    };
    walk(this.model, '');
    return out;
  }

  /** The tensors of {@link LoraAdapterHandle.stateDict}, as [key, variable] (all trainable while the adapter is enabled). */
  trainableParameters(): [string, tf.Variable][] {
    this.check();
    const out: [string, tf.Variable][] = [];
    for (const [path, layer] of this.layers) {
      const { A, B } = layer.loraWeights(this.name);
      out.push([`${HF_PREFIX}${path}.lora_A.weight`, A], [`${HF_PREFIX}${path}.lora_B.weight`, B]);
      const m = layer.magnitudeVector(this.name);
      if (m) out.push([`${HF_PREFIX}${path}.lora_magnitude_vector`, m]);
    }
    for (const [path, e] of this.embeddings) {
      const { A, B } = e.loraWeights(this.name);
      out.push([`${HF_PREFIX}${path}.lora_embedding_A`, A], [`${HF_PREFIX}${path}.lora_embedding_B`, B]);
      const m = e.magnitudeVector(this.name);
      if (m) out.push([`${HF_PREFIX}${path}.lora_magnitude_vector`, m]);
    }
    for (const [path, w] of this.saved) {
      for (const [n, v] of w.copyOf(this.name)!.namedParameters()) out.push([`${HF_PREFIX}${path}.${n}`, v]);
    }
    out.push(...this.biasParameters());
    return out;
  }

  /**
   * HF's `save_embedding_layers="auto"` (peft/utils/save_and_load.py): when a target's name is in
   * {@link EMBEDDING_LAYER_NAMES}, the base weights of the wrapped input embedding and of a wrapped
   * output head, as `<module>.base_layer.weight`. Frozen: saved, not trained.
   */
  embeddingBaseWeights(): [string, tf.Variable][] {
    const wrapped = [...this.layers.keys(), ...this.embeddings.keys()];
    if (!wrapped.some((k) => EMBEDDING_LAYER_NAMES.includes(k.slice(k.lastIndexOf('.') + 1)))) return [];
    const out: [string, tf.Variable][] = [];
    const input = (this.model as { getInputEmbeddings?(): Module }).getInputEmbeddings?.();
    for (const [path, e] of this.embeddings) {
      if (input === undefined || input === e || input === e.baseLayer) out.push([`${HF_PREFIX}${path}.base_layer.weight`, e.weight]);
    }
    const heads = this.model.outputHeadNames?.() ?? [];
    for (const [path, l] of this.layers) if (heads.includes(path) && l.weight) out.push([`${HF_PREFIX}${path}.base_layer.weight`, l.weight]);
    return out;
  }

  /**
   * HF PEFT's `get_peft_model_state_dict`: the keys of `adapter_model.safetensors` (the trainable
   * tensors and {@link LoraAdapterHandle.embeddingBaseWeights}). Live tensors: do not dispose.
   */
  stateDict(): Map<string, tf.Tensor> {
    return new Map([...this.trainableParameters(), ...this.embeddingBaseWeights()]);
  }

  /**
   * Loads tensors saved by {@link LoraAdapterHandle.stateDict} or by HF PEFT. Keys may lack
   * `base_model.model.`, may carry the adapter name (`lora_A.default.weight`,
   * `lora_embedding_A.default`, `lora_magnitude_vector.default.weight`), DoRA's magnitude may end in
   * `.weight` (HF's parameter name), and biases of wrapped layers may be `<module>.bias` or
   * `<module>.base_layer.bias`. Embedding base weights (`<module>.base_layer.weight`) are optional
   * and, when present, overwrite the base's table (as loading an HF adapter does). Nothing is
   * assigned unless every tensor fits.
   * @throws UserError naming missing, unexpected and wrongly shaped tensors (name, expected, got),
   *   and saying when the file's DoRA tensors and the config's `use_dora` disagree.
   */
  loadStateDict(sd: Map<string, tf.Tensor>): void {
    this.check();
    const own = this.stateDict();
    const alias = new Map<string, string>();
    for (const k of own.keys()) {
      const m = /^(.*)\.base_layer\.bias$/.exec(k);
      if (m) alias.set(`${m[1]}.bias`, k);
    }
    const resolved = new Map<string, tf.Tensor>();
    const unexpected: string[] = [];
    const dora: string[] = [];
    for (const [key, t] of sd) {
      let k = key.startsWith(HF_PREFIX) ? key : HF_PREFIX + key;
      if (!own.has(k)) k = k.replace(/\.(lora_[AB])\.[^.]+\.weight$/, '.$1.weight');
      if (!own.has(k)) k = k.replace(/\.(lora_embedding_[AB])\.[^.]+$/, '.$1');
      if (!own.has(k)) k = k.replace(/\.lora_magnitude_vector(\.[^.]+)?\.weight$/, '.lora_magnitude_vector');
      if (!own.has(k) && alias.has(k)) k = alias.get(k)!;
      if (own.has(k)) resolved.set(k, t);
      else if (k.includes('lora_magnitude_vector')) dora.push(key);
      else unexpected.push(key);
    }
    if (dora.length) {
      throw new UserError(`LoRA adapter "${this.name}": the file holds DoRA magnitude vectors (${dora[0]}${dora.length > 1 ? `, ... ${dora.length} tensors` : ''}) but the adapter was set up without use_dora`, { hint: 'inject with use_dora: true (the adapter_config.json of a DoRA adapter says so)' });
    }
    const optional = new Set(this.embeddingBaseWeights().map(([k]) => k));
    const missing = [...own.keys()].filter((k) => !resolved.has(k) && !optional.has(k));
    const mismatched: string[] = [];
    for (const [k, t] of resolved) {
      const target = own.get(k)!;
      if (target.shape.length !== t.shape.length || target.shape.some((d, i) => d !== t.shape[i])) {
        mismatched.push(`${k}: expected [${target.shape.join(', ')}], got [${t.shape.join(', ')}]`);
      }
    }
    if (missing.length || unexpected.length || mismatched.length) {
      const parts = [
        mismatched.length ? `wrong shapes: ${mismatched.join('; ')}` : '',
        missing.length ? `missing tensors: ${missing.join(', ')}` : '',
        unexpected.length ? `tensors the model has no place for: ${unexpected.join(', ')}` : '',
      ].filter(Boolean);
      const hint = mismatched.length
        ? 'the adapter was trained on a base model of other sizes (or with another r / rank_pattern, or a resized vocabulary: loadHfLoraAdapter resizes the embeddings to the saved table): load the base model it names in base_model_name_or_path'
        : missing.some((k) => k.endsWith('.lora_magnitude_vector'))
          ? 'the adapter was set up with use_dora but the file has no DoRA magnitude vectors: inject with use_dora: false'
          : 'inject with the adapter\'s own adapter_config.json (target_modules, modules_to_save, layers_to_transform, bias) before loading its tensors';
      throw new UserError(`LoRA adapter "${this.name}" does not fit the model: ${parts.join('; ')}`, { hint });
    }
    for (const [k, t] of resolved) {
      const v = own.get(k) as tf.Variable;
      v.assign(t.dtype === v.dtype ? t : tf.tidy(() => t.cast(v.dtype)));
    }
  }

  /**
   * The content of `adapter_config.json` with HF PEFT's field set (that of PEFT 0.12, which every
   * PEFT since reads), without `base_model_name_or_path`. `exclude_modules` (PEFT 0.14+) is written
   * only when set, so that older PEFT versions can read the file otherwise.
   */
  adapterConfig(): Record<string, unknown> {
    const c = this.config;
    const out: Record<string, unknown> = {
      alpha_pattern: c.alpha_pattern,
      auto_mapping: null,
      bias: c.bias,
      fan_in_fan_out: c.fan_in_fan_out,
      inference_mode: true,
      init_lora_weights: c.init_lora_weights,
      layer_replication: null,
      layers_pattern: c.layers_pattern,
      layers_to_transform: c.layers_to_transform,
      loftq_config: {},
      lora_alpha: c.lora_alpha,
      lora_dropout: c.lora_dropout,
      megatron_config: null,
      megatron_core: 'megatron.core',
      modules_to_save: c.modules_to_save,
      peft_type: 'LORA',
      r: c.r,
      rank_pattern: c.rank_pattern,
      revision: null,
      target_modules: c.target_modules,
      task_type: c.task_type,
      use_dora: c.use_dora,
      use_rslora: c.use_rslora,
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
   * merged adapter is unmerged first). Also sets its parameters' trainable flags, as HF's
   * `set_adapter`. Trained biases (`bias` other than "none") stay as trained, as in HF PEFT.
   */
  setEnabled(enabled: boolean): void {
    if (!this.alive) return; // a removed adapter has no effect to switch
    this.enabled = enabled;
    for (const layer of [...this.layers.values(), ...this.embeddings.values()]) layer.setEnabled(this.name, enabled);
    for (const w of this.saved.values()) w.setEnabled(this.name, enabled);
    for (const layer of [...this.layers.values(), ...this.embeddings.values()]) for (const [, v] of layer.adapterParameters(this.name)) v.trainable = enabled;
    for (const w of this.saved.values()) for (const [, v] of w.copyOf(this.name)!.namedParameters()) v.trainable = enabled;
  }

  /** Throws the {@link MergeError} merging would throw, before anything is merged. */
  private assertMergeable(): void {
    for (const [path, layer] of this.layers) {
      const b = layer.baseLayer;
      if (!(b instanceof Linear) && !(b instanceof Conv1D) && typeof b.addToWeight !== 'function') {
        throw new MergeError(`cannot merge LoRA adapter "${this.name}" into ${path}: the base layer (${b.constructor.name}) stores its weight in a form that cannot take a float update (e.g. 4-bit quantized). Dequantize the model first, then merge; or keep the adapter unmerged.`);
      }
    }
  }

  /**
   * HF PEFT's `_check_merge_allowed` warning: merging LoRA into an embedding that an output head
   * shares (tied weights) changes the head too.
   */
  private warnTiedMerge(): void {
    const tiedHeads = this.model.namedModules().filter(([, x]) => x instanceof TiedLinear) as [string, TiedLinear][];
    const tied = [...this.embeddings].filter(([, e]) => tiedHeads.some(([, t]) => t.weight === e.weight)).map(([k]) => k);
    if (!tied.length) return;
    const msg = `merging LoRA into ${tied.join(', ')}, whose weight is tied to the output head: the head changes too (HF PEFT warns the same); untie the embeddings first (tie_word_embeddings: false with the head's weight copied) to merge only the embedding`;
    if (!this.warnings.includes(msg)) this.warnings.push(msg);
  }

  /**
   * Folds the adapter into the base weights (W += scaling·B·A, transposed for Conv1D); its layers
   * then skip the LoRA branch. Enables the adapter if it was off.
   * @throws MergeError (nothing merged) when a base layer is quantized: dequantize first.
   */
  merge(): void {
    this.check();
    this.assertMergeable();
    this.warnTiedMerge();
    if (!this.enabled) this.setEnabled(true);
    for (const layer of [...this.layers.values(), ...this.embeddings.values()]) layer.merge(this.name);
  }

  /** Subtracts the merged adapter from the base weights again. */
  unmerge(): void {
    this.check();
    for (const layer of [...this.layers.values(), ...this.embeddings.values()]) layer.unmerge(this.name);
  }

  /**
   * Removes the adapter from the model and returns the model. With `merge` (default false here, see
   * {@link LoraAdapterHandle.mergeAndUnload}) the LoRA update is folded into the base weights and
   * the `modules_to_save` copies replace the originals' values first. Layers left without adapters
   * get their original module back. The handle is unusable afterwards.
   * @throws MergeError (nothing changed) when merging into a quantized base.
   */
  unload(merge = false): LoraTargetModel {
    this.check();
    if (merge) this.assertMergeable();
    if (merge) this.warnTiedMerge();
    for (const [path, layer] of [...this.layers, ...this.embeddings]) {
      if (merge) layer.merge(this.name);
      const left = layer.deleteAdapter(this.name, { keepMerged: merge });
      if (left === 0 && this.model.getSubmodule(path) === layer) this.model.setSubmodule(path, layer.baseLayer as Module);
    }
    for (const [path, w] of this.saved) {
      // A head tied to the embedding (TiedLinear) shares its variable: writing the copy into it
      // would change the embedding too, so the merged model gets the copy itself, untied (as HF's
      // ModulesToSaveWrapper.unload_and_optionally_merge_module returns the adapter's module).
      let replacement: Module | undefined;
      if (merge && w.originalModule instanceof TiedLinear) replacement = cloneModule(w.copyOf(this.name)!, path);
      else if (merge) {
        const copy = w.copyOf(this.name)!.stateDict();
        for (const [n, v] of w.originalModule.namedParameters()) v.assign(copy.get(n)!);
      }
      const left = w.deleteAdapter(this.name);
      if (replacement) {
        replacement.requiresGrad(false);
        replacement.train(w.training);
        if (this.model.getSubmodule(path) === w) this.model.setSubmodule(path, left === 0 ? replacement : w);
      } else if (left === 0 && this.model.getSubmodule(path) === w) this.model.setSubmodule(path, w.originalModule);
    }
    this.alive = false;
    return this.model;
  }

  /** HF PEFT's `merge_and_unload()`: the base model with this adapter folded into its weights. */
  mergeAndUnload(): LoraTargetModel {
    return this.unload(true);
  }

  /** Trainable (this adapter's tensors) and total (every distinct parameter of the model, adapters included). */
  parameterReport(): ParameterReport {
    this.check();
    const trainable = this.trainableParameters().reduce((s, [, v]) => s + v.size, 0);
    const total = this.model.numParameters();
    return { trainable, total, percent: total ? (100 * trainable) / total : 0 };
  }

  /**
   * Freezes every parameter of the model except LoRA weights and modules_to_save copies (of any
   * adapter), then unfreezes biases per `bias` (HF's `_mark_only_adapters_as_trainable`).
   */
  freezeBase(): void {
    const keep = new Set<tf.Variable>();
    for (const [, m] of this.model.namedModules()) {
      if (m instanceof LoraLayer || m instanceof LoraEmbedding) for (const [, v] of m.adapterParameters()) keep.add(v);
      if (m instanceof ModulesToSaveWrapper) for (const n of m.adapterNames()) for (const [, v] of m.copyOf(n)!.namedParameters()) keep.add(v);
    }
    for (const [, v] of this.model.namedParameters()) if (!keep.has(v)) v.trainable = false;
    for (const [, v] of this.biasParameters()) v.trainable = true;
  }

  /**
   * HF PEFT's `add_weighted_adapter` with this adapter first in `adapters`: a new adapter in the
   * same model, returned disabled. See {@link addWeightedLoraAdapter} for the math.
   * @throws UserError as {@link addWeightedLoraAdapter}.
   */
  addWeightedAdapter(adapters: AdapterHandle[], weights: number[], adapterName: string, combinationType: string): LoraAdapterHandle {
    this.check();
    return addWeightedLoraAdapter(adapters as LoraAdapterHandle[], weights, adapterName, combinationType);
  }

  /** Removes the adapter from the model without merging and frees its tensors ({@link LoraAdapterHandle.unload}). */
  dispose(): void {
    if (this.alive) this.unload(false);
  }
}
