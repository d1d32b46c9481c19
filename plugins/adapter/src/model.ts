/**
 * How bottleneck adapters walk a model and insert themselves: at the points each architecture
 * names in `adapterPoints()` (the outputs of the attention and feed-forward blocks that feed the
 * residual stream), by wrapping that module (see `layer.ts`). Also the three registered methods,
 * `houlsby`, `pfeiffer` and `parallel-adapter`, which differ only in their defaults, and the
 * adapter handle with its AdapterHub keys.
 */
import * as tf from '@tensorflow/tfjs';
import { UserError, type JSONSchema7, type MethodContext, type PeftMethod } from '@peftkit/core';
import {
  ModulesToSaveWrapper,
  StateDictError,
  architectureName,
  manualSeed,
  type AdapterHandle,
  type LoadedModel,
  type Module,
  type PreTrainedModel,
  type Layer,
} from '@peftkit/models';
import schema from './config.schema.json' with { type: 'json' };
import type { BottleneckAdapterConfig } from './config.generated.js';
import { BottleneckAdapter, BottleneckAdapterLayer, SublayerInputTap } from './layer.js';
import { adapterHubConfigJson, adapterHubHeadConfigJson, isAdapterHubBottleneckConfig, readAdapterHubFolder, writeAdapterHubFolder, writeAdapterHubHead, ADAPTERHUB_CONFIG_NAME } from './adapterhub-format.js';

/** The registered method names; each is one of AdapterHub's configs. */
export type BottleneckPreset = 'houlsby' | 'pfeiffer' | 'parallel-adapter';

/** A config with every field set. */
export type ResolvedBottleneckConfig = Required<BottleneckAdapterConfig>;

/**
 * Per method: AdapterHub's config name and the defaults that differ from the schema's (which are
 * Houlsby's). From adapters/configuration/adapter_config.py (DoubleSeqBnConfig, SeqBnConfig,
 * ParBnConfig); `original_ln_before` stays false for `pfeiffer` (see the README).
 */
export const PRESETS: Record<BottleneckPreset, { adapterHub: string; description: string; defaults: Partial<BottleneckAdapterConfig> }> = {
  houlsby: {
    adapterHub: 'double_seq_bn',
    description: 'Bottleneck adapters after the attention and the feed-forward block of every layer (Houlsby et al. 2019; AdapterHub double_seq_bn).',
    defaults: {},
  },
  pfeiffer: {
    adapterHub: 'seq_bn',
    description: 'One bottleneck adapter after the feed-forward block of every layer, ReLU (Pfeiffer et al. 2020; AdapterHub seq_bn).',
    defaults: { mh_adapter: false, non_linearity: 'relu' },
  },
  'parallel-adapter': {
    adapterHub: 'par_bn',
    description: 'Scaled parallel bottleneck adapter beside the feed-forward block of every layer (He et al. 2021; AdapterHub par_bn).',
    defaults: { mh_adapter: false, non_linearity: 'relu', reduction_factor: 2, is_parallel: true, scaling: 4 },
  },
};

/** The schema of one method: the shared schema with that method's defaults. */
export function presetSchema(preset: BottleneckPreset): JSONSchema7 {
  const s = structuredClone(schema) as JSONSchema7;
  s.title = `BottleneckAdapterConfig (${preset})`;
  s.description = `${PRESETS[preset].description} Field names of AdapterHub's BnConfig.`;
  for (const [k, v] of Object.entries(PRESETS[preset].defaults)) s.properties[k].default = v;
  return s;
}

/** `config` with the method's defaults filled in (what the engine does from the schema, for direct callers). */
export function resolveConfig(config: BottleneckAdapterConfig, preset: BottleneckPreset): ResolvedBottleneckConfig {
  const props = presetSchema(preset).properties as Record<string, { default: unknown }>;
  const out: Record<string, unknown> = {};
  for (const [k, p] of Object.entries(props)) out[k] = (config as Record<string, unknown>)[k] ?? structuredClone(p.default);
  return out as ResolvedBottleneckConfig;
}

/** Checks beyond the schema: settings AdapterHub has that peftkit does not compute. Pointers relative to the config. */
export function validateBottleneckConfig(config: BottleneckAdapterConfig): { pointer: string; message: string; hint?: string }[] {
  const issues: { pointer: string; message: string; hint?: string }[] = [];
  if (config.original_ln_before === true) {
    issues.push({
      pointer: '/original_ln_before',
      message: 'original_ln_before: true (the model\'s residual and LayerNorm applied before the adapter, AdapterHub\'s seq_bn default) is not supported',
      hint: 'peftkit wraps the sublayer\'s output projection and cannot reach that residual and LayerNorm; use false (the adapter reads the sublayer output, as Houlsby et al. 2019)',
    });
  }
  if (config.original_ln_after === false) issues.push({ pointer: '/original_ln_after', message: 'original_ln_after: false is not supported: the model\'s residual and LayerNorm always follow the adapter', hint: 'use true' });
  if (config.ln_before === true) issues.push({ pointer: '/ln_before', message: 'ln_before: true (a new LayerNorm inside the adapter) is not supported', hint: 'use false' });
  if (config.ln_after === true) issues.push({ pointer: '/ln_after', message: 'ln_after: true (a new LayerNorm inside the adapter) is not supported', hint: 'use false' });
  if (config.mh_adapter === false && config.output_adapter === false) issues.push({ pointer: '/output_adapter', message: 'mh_adapter and output_adapter are both false: no adapter would be inserted', hint: 'set at least one of them to true' });
  const rf = config.reduction_factor;
  if (rf && typeof rf === 'object') {
    const keys = Object.keys(rf);
    if (keys.length === 0) issues.push({ pointer: '/reduction_factor', message: 'reduction_factor is an empty map', hint: 'give a number, or a map with a "default" entry' });
  }
  return issues;
}

/**
 * The reduction factor of layer `layer`: the number, or the map's entry for the layer, else its
 * `default` (AdapterHub's `BottleneckLayer.add_adapter`).
 * @throws UserError when the map has neither.
 */
export function reductionFactorFor(rf: BottleneckAdapterConfig['reduction_factor'], layer: number): number {
  if (typeof rf === 'number') return rf;
  const map = rf ?? {};
  const v = map[String(layer)] ?? map.default;
  if (v === undefined) {
    throw new UserError(`reduction_factor gives no value for layer ${layer} and has no "default" entry`, { pointer: '/reduction_factor', hint: 'add "default", e.g. {"1": 8, "default": 16}' });
  }
  return v;
}

/** m = ⌊d / reduction_factor⌋, at least 1 (AdapterHub's `int(hidden_size // reduction_factor)`). */
export function bottleneckSize(hiddenSize: number, reductionFactor: number): number {
  return Math.max(1, Math.floor(hiddenSize / reductionFactor));
}

/** What `inject` accepts: the model, or a loaded model or PEFT model holding it. */
export type InjectTarget = PreTrainedModel | LoadedModel | { base: LoadedModel };

/** The model inside `t`, and where it came from when known. */
export function resolveTarget(t: InjectTarget): { model: PreTrainedModel; source?: string } {
  const isModel = (x: unknown): x is PreTrainedModel => !!x && typeof (x as PreTrainedModel).adapterPoints === 'function' && typeof (x as PreTrainedModel).forward === 'function';
  if (isModel(t)) return { model: t, source: typeof t.config?._name_or_path === 'string' ? (t.config._name_or_path as string) : undefined };
  if ('model' in t && isModel(t.model)) return { model: t.model, source: t.source };
  if ('base' in t && isModel(t.base?.model)) return { model: t.base.model, source: t.base.source };
  throw new Error('inject expects a PreTrainedModel from @peftkit/models (or a LoadedModel / PeftModel holding one)');
}

/** Which residual feed an adapter sits on, in AdapterHub's terms. */
export type AdapterLocation = 'mh_adapter' | 'output_adapter';

/** One inserted adapter. */
export interface AdapterSite {
  layer: number;
  location: AdapterLocation;
  /** Dotted path of the wrapped module (`transformer.h.0.mlp.c_proj`). */
  modulePath: string;
  /** AdapterHub's module path up to `.adapters` (`transformer.h.0.output_adapters`). */
  keyPrefix: string;
  adapter: BottleneckAdapter;
  wrapper: BottleneckAdapterLayer;
}

/**
 * AdapterHub model types whose sublayer output modules are themselves the adapter layers
 * (`BertSelfOutput` / `BertOutput` mixins: `...attention.output.adapters.<name>`,
 * `...layer.{i}.output.adapters.<name>`); the others (GPT-2, Llama, DistilBERT, ...) hold
 * `attention_adapters` and `output_adapters` on the transformer block.
 */
const OUTPUT_MODULE_LAYOUT = new Set(['bert', 'roberta', 'xlm-roberta']);

/** The longest common dotted prefix of two module paths (the transformer block, `transformer.h.0`). */
function commonPrefix(a: string, b: string): string {
  const pa = a.split('.');
  const pb = b.split('.');
  let i = 0;
  while (i < pa.length && i < pb.length && pa[i] === pb[i]) i++;
  return pa.slice(0, i).join('.');
}

function parentPath(path: string): string {
  const dot = path.lastIndexOf('.');
  return dot < 0 ? '' : path.slice(0, dot);
}

/**
 * AdapterHub's module path for the adapter at `location` of the block of `point`
 * (adapters/models/{bert,gpt2,llama,distilbert}/mixin_*.py), without `.adapters.<name>`.
 */
export function adapterHubKeyPrefix(modelType: string, point: { attentionOutput: string; feedForwardOutput: string }, location: AdapterLocation): string {
  const modulePath = location === 'mh_adapter' ? point.attentionOutput : point.feedForwardOutput;
  if (OUTPUT_MODULE_LAYOUT.has(modelType)) return parentPath(modulePath);
  const block = commonPrefix(point.attentionOutput, point.feedForwardOutput);
  const name = location === 'mh_adapter' ? 'attention_adapters' : 'output_adapters';
  return block ? `${block}.${name}` : name;
}

/** A linear-like layer with the given input width (Linear, Conv1D, a quantized or wrapped one). */
function readsWidth(m: Module, width: number): boolean {
  return (m as unknown as { inFeatures?: unknown }).inFeatures === width;
}

/**
 * The path of the module whose input is the sublayer's input: the first projection reading the
 * hidden width in the attention block (`attn.c_attn`, `self_attn.q_proj`, `attention.self.query`,
 * `attention.q_lin`), or the first one after the attention output in the feed-forward block
 * (`mlp.c_fc`, `mlp.gate_proj`, `intermediate.dense`, `ffn.lin1`). Relies on HF's module order.
 * @throws Error when no such module exists.
 */
export function sublayerInputPath(model: PreTrainedModel, point: { attentionOutput: string; feedForwardOutput: string }, location: AdapterLocation, hiddenSize: number): string {
  const block = commonPrefix(point.attentionOutput, point.feedForwardOutput);
  const mods = model.namedModules().filter(([n]) => block === '' || n.startsWith(`${block}.`));
  const start = location === 'mh_adapter' ? 0 : mods.findIndex(([n]) => n === point.attentionOutput) + 1;
  const own = location === 'mh_adapter' ? point.attentionOutput : point.feedForwardOutput;
  for (let i = Math.max(0, start); i < mods.length; i++) {
    const [n, m] = mods[i];
    if (n === own) break;
    if (n !== point.attentionOutput && readsWidth(m, hiddenSize)) return n;
  }
  throw new Error(`found no projection reading the ${location === 'mh_adapter' ? 'attention' : 'feed-forward'} block's input in ${block || 'the model'}: a parallel adapter needs one`);
}

/** Post-LN architectures: a sublayer's projection input is the residual stream itself. */
const POST_LN = new Set(['bert', 'roberta', 'xlm-roberta', 'distilbert']);

let handleCounter = 0;

/**
 * The handle on one named bottleneck adapter in a model. Its tensors are keyed as in AdapterHub's
 * `adapter.safetensors` (`<module path>.adapters.<name>.adapter_down.0.weight`), computed from the
 * current {@link BottleneckAdapterHandle.name}, which the `inject` step may set after injection.
 */
export class BottleneckAdapterHandle implements AdapterHandle {
  readonly peftType = null;
  /** Identifies this handle's adapters inside the wrappers (names may change). */
  readonly id = `bottleneck-${++handleCounter}`;
  private disposed = false;

  constructor(
    public name: string,
    readonly method: BottleneckPreset,
    readonly resolved: ResolvedBottleneckConfig,
    readonly model: PreTrainedModel,
    readonly sites: AdapterSite[],
    private readonly source?: string,
    /**
     * A sequence classifier's head (`score`, `classifier`), trained in full beside the adapters as
     * AdapterHub trains a static model's prediction head: the original stays frozen, this adapter
     * gets a trainable copy (keyed by {@link BottleneckAdapterHandle.id}), used while it is enabled.
     * By the head's dotted path; empty for other tasks.
     */
    readonly heads: Map<string, ModulesToSaveWrapper> = new Map(),
  ) {}

  /** The config as given, defaults applied. */
  get config(): Record<string, unknown> {
    return { ...this.resolved };
  }

  /** `[AdapterHub key, variable]` for every parameter, in site order. */
  private entries(): [string, tf.Variable][] {
    return this.sites.flatMap((s) => s.adapter.namedParameters(`${s.keyPrefix}.adapters.${this.name}`));
  }

  /** `[head parameter name as the base names it (score.weight), variable]` of this adapter's head copies. */
  headEntries(): [string, tf.Variable][] {
    return [...this.heads].flatMap(([path, w]) => w.copyOf(this.id)!.namedParameters().map(([n, v]): [string, tf.Variable] => [`${path}.${n}`, v]));
  }

  /** The adapters' parameters, then the head's (under the base's names, as AdapterHub's head file keys them). */
  trainableParameters(): [string, tf.Variable][] {
    return [...this.entries(), ...this.headEntries()];
  }

  stateDict(): Map<string, tf.Tensor> {
    return new Map(this.trainableParameters());
  }

  /** Elements in this adapter's parameters: 2·d·m + d + m per site (plus a learned scaling), and the head's. */
  numParameters(): number {
    return this.trainableParameters().reduce((s, [, v]) => s + v.size, 0);
  }

  /**
   * Loads tensors keyed as AdapterHub saves them. Accepts keys with another adapter name when the
   * tensors hold a single adapter (AdapterHub's `load_as`), and keys whose module path differs only
   * by the base-model prefix (`bert.`, `transformer.`, `model.`, `distilbert.`).
   * @throws StateDictError naming missing, unexpected and wrongly shaped tensors
   */
  loadStateDict(sd: Map<string, tf.Tensor>): void {
    const headSd = new Map<string, tf.Tensor>();
    const adapterSd = new Map<string, tf.Tensor>();
    for (const [k, t] of sd) {
      const headKey = this.headKeyOf(k);
      if (headKey) headSd.set(headKey, t);
      else adapterSd.set(k, t);
    }
    this.loadAdapterStateDict(adapterSd);
    // AdapterHub keeps the head in its own file (model_head.safetensors): loaded apart, when given.
    if (headSd.size) this.loadHeadStateDict(headSd);
  }

  /** The head parameter `key` names (`score.weight`, also with a base-model prefix such as `transformer.`), or undefined. */
  private headKeyOf(key: string): string | undefined {
    if (key.includes('.adapters.')) return undefined;
    const own = this.headEntries().map(([k]) => k);
    return own.find((k) => key === k || key.endsWith(`.${k}`)) ?? (/(^|\.)(score|classifier|pre_classifier)\.(weight|bias)$/.test(key) ? key : undefined);
  }

  /**
   * Loads a saved prediction head into this adapter's head copies.
   * @throws StateDictError naming missing, unexpected and wrongly shaped head tensors (a head of another number of labels)
   */
  loadHeadStateDict(sd: Map<string, tf.Tensor>): void {
    const own = new Map(this.headEntries());
    const report = { missing: [] as string[], unexpected: [] as string[], mismatched: [] as string[] };
    for (const k of sd.keys()) if (!own.has(k)) report.unexpected.push(k);
    for (const [k, v] of own) {
      const t = sd.get(k);
      if (!t) report.missing.push(k);
      else if (t.shape.join(',') !== v.shape.join(',')) report.mismatched.push(`${k}: expected [${v.shape.join(', ')}], got [${t.shape.join(', ')}] (a head of ${t.shape[0]} labels; load the base with that many)`);
    }
    if (report.missing.length || report.unexpected.length || report.mismatched.length) throw new StateDictError(report, `prediction head of bottleneck adapter "${this.name}"`);
    for (const [k, v] of own) {
      const t = sd.get(k)!;
      v.assign(t.dtype === 'float32' ? t : t.cast('float32'));
    }
  }

  private loadAdapterStateDict(sd: Map<string, tf.Tensor>): void {
    const own = new Map(this.entries());
    // Split every key into module path, adapter name and parameter name.
    const params = new Set(this.sites.flatMap((s) => s.adapter.namedParameters().map(([n]) => n)));
    const parsed = [...sd.keys()].map((k) => {
      for (const p of params) {
        if (!k.endsWith(`.${p}`)) continue;
        const head = k.slice(0, -(p.length + 1));
        const at = head.lastIndexOf('.adapters.');
        if (at >= 0) return { key: k, prefix: head.slice(0, at), adapter: head.slice(at + '.adapters.'.length), param: p };
      }
      return { key: k, prefix: undefined, adapter: undefined, param: undefined };
    });
    const names = new Set(parsed.map((p) => p.adapter).filter((n): n is string => n !== undefined));
    const fileName = names.has(this.name) ? this.name : names.size === 1 ? [...names][0] : this.name;
    const ownPrefixes = [...new Set(this.sites.map((s) => s.keyPrefix))];
    const mapped = new Map<string, tf.Tensor>();
    const unexpected: string[] = [];
    for (const p of parsed) {
      if (p.prefix === undefined) {
        unexpected.push(p.key);
        continue;
      }
      if (p.adapter !== fileName) continue; // another adapter saved in the same file
      const prefix = ownPrefixes.find((o) => o === p.prefix) ?? ownPrefixes.find((o) => o.endsWith(`.${p.prefix}`) || p.prefix!.endsWith(`.${o}`));
      if (!prefix) {
        unexpected.push(p.key);
        continue;
      }
      mapped.set(`${prefix}.adapters.${this.name}.${p.param}`, sd.get(p.key)!);
    }
    const report = { missing: [] as string[], unexpected, mismatched: [] as string[] };
    for (const [k, v] of own) {
      const t = mapped.get(k);
      if (!t) report.missing.push(k);
      else if (t.shape.length !== v.shape.length || t.shape.some((x, i) => x !== v.shape[i])) report.mismatched.push(`${k}: expected [${v.shape.join(', ')}], got [${t.shape.join(', ')}]`);
    }
    if (report.missing.length || report.unexpected.length || report.mismatched.length) throw new StateDictError(report, `bottleneck adapter "${this.name}"`);
    for (const [k, v] of own) {
      const t = mapped.get(k)!;
      (v as tf.Variable).assign(t.dtype === 'float32' ? t : t.cast('float32'));
    }
  }

  /** AdapterHub's `adapter_config.json` for this adapter (`model_name`: the base's source when known). */
  adapterConfig(): Record<string, unknown> {
    return adapterHubConfigJson(this.resolved, this.meta());
  }

  /** AdapterHub's top-level fields; `model_class` is the class the adapter was trained in (HF's name for this model and task). */
  private meta() {
    return {
      name: this.name,
      hiddenSize: this.model.dims().hiddenSize,
      modelClass: architectureName(String(this.model.config.model_type), this.model.task) ?? this.model.constructor.name,
      modelName: this.source ?? null,
      modelType: this.model.config.model_type,
    };
  }

  /**
   * Writes the adapter in AdapterHub's layout: `adapter_config.json` and `adapter.safetensors`, and
   * for a sequence classifier its trained head as AdapterHub's `save_adapter(..., with_head=True)`
   * saves a static model's head: `head_config.json` and `model_head.safetensors`.
   * @returns the file names written
   */
  save(dir: string, options: { baseModelNameOrPath?: string | null } = {}): string[] {
    const meta = this.meta();
    if (options.baseModelNameOrPath !== undefined) meta.modelName = options.baseModelNameOrPath;
    const files = writeAdapterHubFolder(dir, adapterHubConfigJson(this.resolved, meta), new Map(this.entries()));
    if (this.heads.size) files.push(...writeAdapterHubHead(dir, adapterHubHeadConfigJson(meta, this.model.config), new Map(this.headEntries())));
    return files;
  }

  setEnabled(enabled: boolean): void {
    for (const s of this.sites) {
      if (enabled) s.wrapper.enabled.add(this.id);
      else s.wrapper.enabled.delete(this.id);
    }
    for (const w of this.heads.values()) w.setEnabled(this.id, enabled);
  }

  /** Removes the adapters from the model (restoring the original modules where none remain) and frees them. */
  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    for (const [path, w] of this.heads) {
      if (w.deleteAdapter(this.id) === 0 && this.model.getSubmodule(path) === w) this.model.setSubmodule(path, w.originalModule as Layer);
    }
    for (const s of this.sites) {
      s.wrapper.adapters.delete(this.id);
      s.wrapper.enabled.delete(this.id);
      s.adapter.dispose();
      const stillParallel = [...s.wrapper.adapters.values()].some((a) => a.options.isParallel);
      if (s.wrapper.tap && !stillParallel) {
        const tapPath = tapPaths.get(s.wrapper.tap);
        if (tapPath && this.model.getSubmodule(tapPath) === s.wrapper.tap) this.model.setSubmodule(tapPath, s.wrapper.tap.baseLayer);
        s.wrapper.tap = undefined;
      }
      if (s.wrapper.adapters.size === 0 && this.model.getSubmodule(s.modulePath) === s.wrapper) this.model.setSubmodule(s.modulePath, s.wrapper.baseLayer);
    }
  }
}

/** Where each tap sits, for unwrapping. */
const tapPaths = new WeakMap<SublayerInputTap, string>();

function wrapperAt(model: PreTrainedModel, path: string): BottleneckAdapterLayer {
  const m = model.getSubmodule(path);
  if (!m) throw new Error(`adapterPoints() names "${path}", which the model does not have`);
  if (m instanceof BottleneckAdapterLayer) return m;
  const w = new BottleneckAdapterLayer(m as Layer);
  model.setSubmodule(path, w);
  return w;
}

function tapAt(model: PreTrainedModel, path: string): SublayerInputTap {
  const m = model.getSubmodule(path)!;
  if (m instanceof SublayerInputTap) return m;
  const t = new SublayerInputTap(m as Layer);
  model.setSubmodule(path, t);
  tapPaths.set(t, path);
  return t;
}

/**
 * Inserts one bottleneck adapter per selected point of every layer not in `leave_out`, freezes the
 * base model and returns the handle. Sequential adapters wrap the output module named by
 * `adapterPoints()` with `y + A(y)`; parallel ones also tap the sublayer's input x and add `A(x)`.
 * @throws UserError for settings peftkit does not compute (see {@link validateBottleneckConfig}) or
 *   when no adapter would be inserted
 */
export function injectBottleneckAdapter(target: InjectTarget, config: BottleneckAdapterConfig, ctx: Partial<MethodContext>, preset: BottleneckPreset): BottleneckAdapterHandle {
  const issues = validateBottleneckConfig(config);
  if (issues.length) throw new UserError(`${preset}: ${issues.map((i) => `${i.pointer}: ${i.message}`).join('; ')}`, { pointer: issues[0].pointer, hint: issues[0].hint });
  const c = resolveConfig(config, preset);
  const { model, source } = resolveTarget(target);
  if (ctx.seed !== undefined) manualSeed(ctx.seed);
  const d = model.dims().hiddenSize;
  const modelType = model.config.model_type;
  model.requiresGrad(false);
  const handleSites: Omit<AdapterSite, 'wrapper'>[] = [];
  const points = model.adapterPoints();
  const leaveOut = new Set(c.leave_out);
  for (const p of points) {
    if (leaveOut.has(p.layer)) continue;
    const m = bottleneckSize(d, reductionFactorFor(c.reduction_factor, p.layer));
    for (const location of ['mh_adapter', 'output_adapter'] as const) {
      if (!c[location]) continue;
      const adapter = new BottleneckAdapter(d, m, {
        nonLinearity: c.non_linearity,
        initWeights: c.init_weights,
        scaling: c.scaling,
        dropout: c.dropout,
        isParallel: c.is_parallel,
      });
      handleSites.push({
        layer: p.layer,
        location,
        modulePath: location === 'mh_adapter' ? p.attentionOutput : p.feedForwardOutput,
        keyPrefix: adapterHubKeyPrefix(modelType, p, location),
        adapter,
      });
    }
  }
  if (handleSites.length === 0) {
    throw new UserError(`${preset}: no adapter inserted: leave_out [${c.leave_out.join(', ')}] excludes all ${points.length} layers`, { pointer: '/leave_out' });
  }
  // Install only once every adapter is built, so that a failure leaves the model untouched.
  const pointByLayer = new Map(points.map((p) => [p.layer, p]));
  const tapFor = c.is_parallel ? handleSites.map((s) => sublayerInputPath(model, pointByLayer.get(s.layer)!, s.location, d)) : [];
  const handle = new BottleneckAdapterHandle(ctx.adapterName ?? 'default', preset, c, model, [], source);
  if (model.task === 'sequence-classification') {
    // AdapterHub trains a classifier's prediction head with the adapter and saves it beside it; a
    // new head left frozen at its random init would make the adapter useless (HF PEFT's SEQ_CLS
    // adds it to modules_to_save for the same reason).
    for (const path of model.outputHeadNames()) {
      const m = model.getSubmodule(path)!;
      const w = m instanceof ModulesToSaveWrapper ? m : new ModulesToSaveWrapper(m, path);
      if (!(m instanceof ModulesToSaveWrapper)) {
        w.train(m.training);
        model.setSubmodule(path, w as unknown as Layer);
      }
      w.addAdapter(handle.id);
      handle.heads.set(path, w);
    }
    ctx.logger?.info(`${preset}: sequence classification: training the classification head (${model.outputHeadNames().join(', ')}) in full beside the adapters; it is saved with them as AdapterHub's prediction head (head_config.json, model_head.safetensors)`);
  }
  handleSites.forEach((s, i) => {
    const wrapper = wrapperAt(model, s.modulePath);
    if (c.is_parallel) wrapper.tap ??= tapAt(model, tapFor[i]);
    wrapper.adapters.set(handle.id, s.adapter);
    wrapper.enabled.add(handle.id);
    for (const [, v] of s.adapter.namedParameters()) v.trainable = true;
    handle.sites.push({ ...s, wrapper });
  });
  ctx.logger?.info(`${preset}: ${handle.sites.length} bottleneck adapters (d ${d}, m ${handle.sites[0].adapter.bottleneckSize}${new Set(handle.sites.map((s) => s.adapter.bottleneckSize)).size > 1 ? ' in the first layer' : ''}), ${handle.numParameters().toLocaleString('en-US')} parameters`);
  return handle;
}

/**
 * Reads an AdapterHub folder (`adapter_config.json` + `adapter.safetensors`), injects an adapter
 * with its config into `target` and loads its weights. The adapter keeps the name in the file
 * unless `ctx.adapterName` is given.
 * @throws UserError for a bad folder, settings peftkit does not compute, or a model of another width
 * @throws StateDictError when the tensors do not match the model's layers
 */
export function loadAdapterHub(target: InjectTarget, dir: string, ctx: Partial<MethodContext> = {}): BottleneckAdapterHandle {
  const warn = (m: string) => ctx.logger?.warn(m);
  const folder = readAdapterHubFolder(dir, warn);
  const file = `${dir}/${ADAPTERHUB_CONFIG_NAME}`;
  try {
    const issues = validateBottleneckConfig(folder.config);
    if (issues.length) throw new UserError(`${file}: /config${issues[0].pointer}: ${issues[0].message}`, { file, pointer: `/config${issues[0].pointer}`, hint: issues[0].hint });
    const { model } = resolveTarget(target);
    const d = model.dims().hiddenSize;
    if (folder.meta.hiddenSize !== d) {
      throw new UserError(`${file}: the adapter was trained on a model with hidden_size ${folder.meta.hiddenSize} (${folder.meta.modelName ?? 'unknown model'}), but this model's hidden size is ${d}`, { file, pointer: '/hidden_size', hint: 'load the adapter onto the base model it was trained with' });
    }
    const c = folder.config;
    if (c.is_parallel && !String(folder.json.version ?? '').startsWith('peftkit') && !POST_LN.has(model.config.model_type)) {
      ctx.logger?.warn(`${file}: AdapterHub's parallel adapters read the residual stream before the LayerNorm of a ${model.config.model_type} block; peftkit feeds them the LayerNorm's output (the sublayer's projection input), so this adapter computes differently than in AdapterHub`);
    }
    const preset: BottleneckPreset = c.is_parallel ? 'parallel-adapter' : c.mh_adapter === false ? 'pfeiffer' : 'houlsby';
    // Fields the file leaves out take AdapterHub's BnConfig defaults, not a preset's.
    const full: BottleneckAdapterConfig = { init_weights: 'mam_adapter', is_parallel: false, scaling: 1, ...c };
    const handle = injectBottleneckAdapter(target, full, { ...ctx, adapterName: ctx.adapterName ?? folder.meta.name }, preset);
    try {
      handle.loadStateDict(folder.tensors);
      if (folder.head && handle.heads.size) handle.loadHeadStateDict(folder.head.tensors);
      else if (folder.head) warn(`${dir}: ignoring the saved prediction head (${[...folder.head.tensors.keys()].join(', ')}): the model is loaded as ${model.task}; load it for sequence classification${folder.head.numLabels ? ` with ${folder.head.numLabels} labels` : ''} to use it`);
      else if (handle.heads.size) warn(`${dir}: the adapter has no saved prediction head (head_config.json, model_head.safetensors), so the classifier's head is the base's own, untrained for this adapter`);
    } catch (e) {
      handle.dispose();
      throw e;
    }
    return handle;
  } finally {
    for (const t of folder.tensors.values()) t.dispose();
    for (const t of folder.head?.tensors.values() ?? []) t.dispose();
  }
}

/** The registered method for one AdapterHub preset. */
function bottleneckMethod(preset: BottleneckPreset): PeftMethod<BottleneckAdapterConfig, InjectTarget, BottleneckAdapterHandle> {
  return {
    name: preset,
    peftType: null,
    family: 'adapter-layers',
    description: `${PRESETS[preset].description} Saved in AdapterHub's format.`,
    configSchema: presetSchema(preset),
    validateConfig: validateBottleneckConfig,
    inject: (model, config, ctx) => injectBottleneckAdapter(model, config, ctx, preset),
    loadAdapter: (model, dir, ctx) => loadAdapterHub(model, dir, ctx),
    recognizesAdapterConfig: (json) => isAdapterHubBottleneckConfig(json),
  } as PeftMethod<BottleneckAdapterConfig, InjectTarget, BottleneckAdapterHandle>;
}

/** `houlsby`: AdapterHub's double_seq_bn (after attention and after the feed-forward block, swish, factor 16). */
export const houlsbyMethod = bottleneckMethod('houlsby');
/** `pfeiffer`: AdapterHub's seq_bn (after the feed-forward block only, ReLU, factor 16). */
export const pfeifferMethod = bottleneckMethod('pfeiffer');
/** `parallel-adapter`: AdapterHub's par_bn (He et al. 2021: parallel to the feed-forward block, ReLU, factor 2, scaling 4). */
export const parallelAdapterMethod = bottleneckMethod('parallel-adapter');
