import * as tf from '@tensorflow/tfjs';

/** A name-to-tensor map with Hugging Face state-dict names. */
export type StateDict = Map<string, tf.Tensor>;

/** What {@link Module.loadStateDict} found. */
export interface LoadReport {
  missing: string[];
  unexpected: string[];
  /** Names whose shapes differ: `name: expected [a, b], got [c, d]`. */
  mismatched: string[];
}

/** Thrown by a strict {@link Module.loadStateDict}; lists every problem by name. */
export class StateDictError extends Error {
  constructor(readonly report: LoadReport, context = '') {
    const parts = [
      report.missing.length ? `missing tensors: ${report.missing.join(', ')}` : '',
      report.unexpected.length ? `unexpected tensors: ${report.unexpected.join(', ')}` : '',
      report.mismatched.length ? `wrong shapes: ${report.mismatched.join('; ')}` : '',
    ].filter(Boolean);
    super(`${context ? context + ': ' : ''}state dict does not match the model: ${parts.join('; ')}`);
    this.name = 'StateDictError';
  }
}

/**
 * The base of every layer and model: named children and parameters, so that
 * {@link Module.namedParameters} yields exactly Hugging Face's state-dict names
 * (`transformer.h.0.attn.c_attn.weight`), as PyTorch's `nn.Module` does.
 *
 * Parameters are `tf.Variable`s; the variable's own `trainable` flag is the per-parameter
 * trainable flag. Variables get engine-unique names (tfjs's names are global), never HF names.
 */
export class Module {
  /** False in evaluation mode: dropout is off. Set through {@link Module.train} / {@link Module.eval}. */
  training = true;
  private readonly _params = new Map<string, tf.Variable>();
  private readonly _buffers = new Map<string, tf.Tensor>();
  private readonly _children = new Map<string, Module>();

  /** Adds a parameter owned by this module; the tensor is wrapped in a new Variable (and kept, not copied, when it already is one). */
  protected registerParameter(name: string, value: tf.Tensor, trainable = true): tf.Variable {
    const v = value instanceof tf.Variable ? value : tf.variable(value, trainable);
    if (!(value instanceof tf.Variable)) value.dispose();
    v.trainable = trainable;
    this._params.set(name, v);
    return v;
  }

  /** Adds a non-parameter tensor that is saved in the state dict (none of HF's models need one yet). */
  protected registerBuffer(name: string, value: tf.Tensor): tf.Tensor {
    this._buffers.set(name, tf.keep(value));
    return value;
  }

  /** Adds (or replaces) a child module under `name`. */
  registerModule<M extends Module>(name: string, module: M): M {
    this._children.set(name, module);
    return module;
  }

  /** This module's own parameter called `name`, if any. */
  parameter(name: string): tf.Variable | undefined {
    return this._params.get(name);
  }

  /** Direct children, in registration order. */
  children(): [string, Module][] {
    return [...this._children.entries()];
  }

  /** Every module in the tree with its dotted name; the root is `''` (as PyTorch's `named_modules`). */
  namedModules(prefix = ''): [string, Module][] {
    const out: [string, Module][] = [[prefix, this]];
    for (const [n, c] of this._children) out.push(...c.namedModules(prefix ? `${prefix}.${n}` : n));
    return out;
  }

  /** Every parameter in the tree with its dotted name. Shared (tied) variables are listed once, under their first name. */
  namedParameters(prefix = ''): [string, tf.Variable][] {
    const seen = new Set<tf.Variable>();
    const out: [string, tf.Variable][] = [];
    const walk = (m: Module, p: string) => {
      for (const [n, v] of m._params) {
        if (!seen.has(v)) {
          seen.add(v);
          out.push([p ? `${p}.${n}` : n, v]);
        }
      }
      for (const [n, c] of m._children) walk(c, p ? `${p}.${n}` : n);
    };
    walk(this, prefix);
    return out;
  }

  /** Trainable parameters only. */
  trainableParameters(): [string, tf.Variable][] {
    return this.namedParameters().filter(([, v]) => v.trainable);
  }

  /** The module at a dotted path (`h.0.attn`), or undefined. */
  getSubmodule(path: string): Module | undefined {
    if (path === '') return this;
    let m: Module | undefined = this;
    for (const part of path.split('.')) m = m?._children.get(part);
    return m;
  }

  /**
   * Replaces the module at a dotted path (how adapter-layer methods wrap a base layer).
   * @throws Error when the parent path does not exist.
   */
  setSubmodule(path: string, module: Module): void {
    const dot = path.lastIndexOf('.');
    const parent = this.getSubmodule(dot < 0 ? '' : path.slice(0, dot));
    const name = path.slice(dot + 1);
    if (!parent || !parent._children.has(name)) throw new Error(`no submodule "${path}"`);
    const old = parent._children.get(name);
    parent._children.set(name, module);
    // Model code calls children through fields of the same name (`this.c_attn.forward(x)`):
    // keep that field pointing at the replacement.
    if ((parent as any)[name] === old) (parent as any)[name] = module;
  }

  /** Sets every parameter's trainable flag. */
  requiresGrad(trainable: boolean): this {
    for (const [, v] of this.namedParameters()) v.trainable = trainable;
    return this;
  }

  /** Sets training mode on this module and every descendant. */
  train(mode = true): this {
    for (const [, m] of this.namedModules()) m.training = mode;
    return this;
  }

  /** Evaluation mode (dropout off). */
  eval(): this {
    return this.train(false);
  }

  /**
   * Every parameter and buffer by its HF name. The tensors are the live ones (not copies): do not
   * dispose them. Tied weights appear under each of their names, as in PyTorch.
   */
  stateDict(prefix = ''): StateDict {
    const out: StateDict = new Map();
    const walk = (m: Module, p: string) => {
      for (const [n, v] of m._params) out.set(p ? `${p}.${n}` : n, v);
      for (const [n, b] of m._buffers) out.set(p ? `${p}.${n}` : n, b);
      for (const [n, c] of m._children) walk(c, p ? `${p}.${n}` : n);
    };
    walk(this, prefix);
    return out;
  }

  /** Names {@link Module.loadStateDict} may leave unset without calling them missing (tied weights). */
  optionalStateKeys(): Set<string> {
    return new Set();
  }

  /**
   * Copies tensors into the parameters with the same names. Shapes must match exactly.
   * @param strict - when true (default), any missing, unexpected or wrongly shaped tensor throws.
   * @returns what was missing, unexpected or mismatched (when not strict).
   * @throws StateDictError in strict mode, naming every offending tensor.
   */
  loadStateDict(sd: Map<string, tf.Tensor>, strict = true): LoadReport {
    const own = this.stateDict();
    const optional = this.optionalStateKeys();
    const report: LoadReport = { missing: [], unexpected: [], mismatched: [] };
    for (const [name, t] of sd) {
      const target = own.get(name);
      if (!target) report.unexpected.push(name);
      else if (!sameShape(target.shape, t.shape)) report.mismatched.push(`${name}: expected [${target.shape.join(', ')}], got [${t.shape.join(', ')}]`);
    }
    for (const name of own.keys()) if (!sd.has(name) && !optional.has(name)) report.missing.push(name);
    if (strict && (report.missing.length || report.unexpected.length || report.mismatched.length)) throw new StateDictError(report);
    for (const [name, t] of sd) {
      const target = own.get(name);
      if (!target || !sameShape(target.shape, t.shape)) continue;
      if (target instanceof tf.Variable) target.assign(t.dtype === target.dtype ? t : t.cast(target.dtype));
      else throw new Error(`${name} is a buffer; buffers are loaded by their module`);
    }
    return report;
  }

  /** Number of parameter elements (tied weights counted once). */
  numParameters(trainableOnly = false): number {
    return this.namedParameters().filter(([, v]) => !trainableOnly || v.trainable).reduce((s, [, v]) => s + v.size, 0);
  }

  /** Disposes every parameter and buffer. */
  dispose(): void {
    for (const [, v] of this.namedParameters()) v.dispose();
    for (const [, m] of this.namedModules()) for (const b of m._buffers.values()) b.dispose();
  }
}

function sameShape(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

/** A list of modules named `0`, `1`, ... (PyTorch's `nn.ModuleList`). */
export class ModuleList<M extends Module = Module> extends Module {
  readonly length: number;
  /**
   * When the list is a model's stack of blocks: run each block with gradient checkpointing while
   * training (`nn/checkpoint.ts`; set by `PreTrainedModel.gradientCheckpointingEnable`).
   */
  gradientCheckpointing = false;
  constructor(items: M[]) {
    super();
    this.length = items.length;
    items.forEach((m, i) => this.registerModule(String(i), m));
  }
  /** The i-th module (after any {@link Module.setSubmodule} replacement). */
  at(i: number): M {
    return this.getSubmodule(String(i)) as M;
  }
  [Symbol.iterator](): Iterator<M> {
    let i = 0;
    return { next: () => (i < this.length ? { value: this.at(i++), done: false } : { value: undefined as any, done: true }) };
  }
}

/** A module that maps one tensor to one tensor; what adapter-layer methods wrap and replace. */
export type Layer = Module & { forward(x: tf.Tensor): tf.Tensor };
