/**
 * The commands that use finished adapters: `generate` (text from a causal LM with adapters,
 * streamed), `classify` (labels from a sequence-classification base with SEQ_CLS adapters),
 * `inspect` (what an adapter folder holds and whether it fits a base) and `merge` (the base with an
 * adapter merged in, as an HF checkpoint). Thin shells over `@peftkit/models`' `loadPretrained`,
 * `loadAdapters`, `generateText`, `classify` and `inspectAdapter`, and `@peftkit/steps`'
 * `writeMergedModel`.
 */
import { existsSync, statSync } from 'node:fs';
import { basename, resolve } from 'node:path';
import { InvalidArgumentError, Option, type Command } from 'commander';
import { UserError, createRegistry, initBackend, type BackendChoice, type BackendInfo, type PeftMethod, type StepLogger } from '@peftkit/core';
import type { AdapterInspection, AdapterSource, Classification, LoadedModel, LoadedPretrained, ModelTask, PeftModel, PromptFormat } from '@peftkit/models';
import type { Io } from './cli.js';
import { loadPlugins } from './plugin-loading.js';

/**
 * `@peftkit/models`, imported when a serving command runs: the other commands (validate, --help)
 * then start without compiling and loading the model code.
 */
const models = () => import('@peftkit/models');
/** `@peftkit/models`' BASE_ADAPTER_NAME (HF PEFT's name for "no adapter"), for the help texts. */
const BASE_ADAPTER_NAME = '__base__';

/** Backends `--backend` accepts (`initBackend`'s choices). */
const BACKENDS: BackendChoice[] = ['auto', 'wasm', 'cpu', 'webgpu', 'tensorflow', 'tensorflow-gpu'];
/** Mismatches listed in an error before "... and N more" (`peftkit inspect --base` lists them all). */
const SHOWN_MISMATCHES = 5;

/** An adapter given on the command line: the name to serve it under, its folder, and as typed. */
interface AdapterArg extends AdapterSource {
  shown: string;
}

interface CommonOptions {
  model: string;
  adapter: string[];
  use?: string;
  backend: BackendChoice;
  discover: boolean;
}

interface GenerateOptions extends CommonOptions {
  maxNewTokens: number;
  temperature?: number;
  topK?: number;
  topP?: number;
  seed?: number;
  doSample?: boolean;
  ignoreEos?: boolean;
  chat?: boolean;
  raw?: boolean;
  json?: boolean;
}

interface InspectOptions {
  base?: string;
  json?: boolean;
  backend: BackendChoice;
  discover: boolean;
}

interface ClassifyOptions extends CommonOptions {
  labels?: string;
  batchSize: number;
  json?: boolean;
}

function collect(value: string, previous: string[]): string[] {
  return [...previous, value];
}

/** A commander parser for numbers, failing with the option's name. */
function num(kind: 'int' | 'float', min?: number): (value: string) => number {
  return (value: string) => {
    const x = Number(value);
    if (value.trim() === '' || !Number.isFinite(x) || (kind === 'int' && !Number.isInteger(x)) || (min !== undefined && x < min)) {
      throw new InvalidArgumentError(`expected ${kind === 'int' ? 'an integer' : 'a number'}${min !== undefined ? ` >= ${min}` : ''}.`);
    }
    return x;
  };
}

/** Adds `generate`, `classify` and `inspect` to the program. */
export function addServeCommands(program: Command, io: Io, setCode: (c: number) => void): void {
  const common = (cmd: Command) =>
    cmd
      .requiredOption('-m, --model <folder-or-hub-id>', 'the base model: a folder with config.json and model.safetensors, or a Hugging Face Hub id already in the cache or downloadable')
      .addOption(new Option('--backend <name>', 'TensorFlow.js backend (auto: tfjs-node-gpu, webgpu on a real GPU, tfjs-node, wasm, cpu, the first that starts)').choices(BACKENDS).default('auto'))
      .option('--no-discover', 'load only the built-in plugins, not every installed plugin package (their methods read adapter folders)');

  common(
    program
      .command('generate')
      .description('generate text with a causal LM and its adapters; tokens are streamed to standard output as they come')
      .argument('[prompt]', 'the prompt; absent: read from standard input'),
  )
    .option('-a, --adapter <name=folder>', 'load an adapter folder (HF PEFT or AdapterHub) under a name; repeatable (several adapters on one base); the first is active', collect, [])
    .option('-u, --use <name>', `the adapter to generate with (${BASE_ADAPTER_NAME}: the base model alone); default: the first adapter`)
    .option('-n, --max-new-tokens <n>', 'tokens to generate at most', num('int', 0), 50)
    .option('--temperature <t>', 'sampling temperature (sets sampling on, as in HF)', num('float', 0))
    .option('--top-k <k>', 'sample from the k most likely tokens (sets sampling on)', num('int', 0))
    .option('--top-p <p>', 'sample from the most likely tokens whose probability reaches p (sets sampling on)', num('float', 0))
    .option('--do-sample', 'sample (temperature 1) instead of greedy decoding')
    .option('--seed <s>', 'seed of the sampling stream', num('int'))
    .option('--ignore-eos', 'do not stop at the end-of-sequence token')
    .option('--chat', 'wrap the prompt as a user message with the tokenizer\'s chat template')
    .option('--raw', 'send the prompt as it is: do not wrap it in the prompt template the adapter (or model) was trained with (its prompt_format.json)')
    .option('--json', 'print the result as JSON (prompt, adapter, text, tokenIds, finishReason) instead of streaming')
    .action(async (prompt: string | undefined, o: GenerateOptions) => {
      setCode(await generateCommand(io, prompt, o));
    });

  common(
    program
      .command('classify')
      .description('label texts with a sequence-classification base and its SEQ_CLS adapter(s); prints label and probabilities per text')
      .argument('[text...]', 'texts to classify; absent: read from standard input, one per line'),
  )
    .option('-a, --adapter <name=folder>', 'load a SEQ_CLS adapter folder under a name; repeatable; the first is active; the base\'s head gets the adapter\'s number of labels', collect, [])
    .option('-u, --use <name>', `the adapter to classify with (${BASE_ADAPTER_NAME}: the base model alone); default: the first adapter`)
    .option('--labels <names>', 'label names in id order, comma-separated (default: the base config\'s id2label, else LABEL_<i>)')
    .option('--batch-size <n>', 'texts per forward pass', num('int', 1), 16)
    .option('--json', 'print the results as JSON')
    .action(async (texts: string[], o: ClassifyOptions) => {
      setCode(await classifyCommand(io, texts, o));
    });

  program
    .command('merge')
    .description('merge an adapter into its base and write the merged model as an HF checkpoint (HF PEFT\'s merge_and_unload + save_pretrained), loadable without any adapter')
    .requiredOption('-m, --model <folder-or-hub-id>', 'the base model the adapter was trained on: a folder with config.json and model.safetensors, or a Hugging Face Hub id')
    .requiredOption('-a, --adapter <folder>', 'the adapter folder (HF PEFT; a method that can merge, such as LoRA)')
    .requiredOption('-o, --out <folder>', 'folder to write the merged checkpoint into (replaced as a whole)')
    .option('-q, --quantize <scheme>', 'the adapter was trained on a quantized base (QLoRA): quantize the base with this scheme (nf4, fp4, int8; from @peftkit/qlora), dequantize it to float32 and merge into that, the weights the adapter saw in training')
    .option('--blocksize <n>', 'blocksize of --quantize (default: the scheme\'s, 64)', num('int', 1))
    .option('--no-double-quant', 'with --quantize: the base was quantized without double quantization')
    .option('--requantize', 'with --quantize: quantize the merged model again with the same scheme and write it in that storage (the merged update is then rounded to the quantization grid)')
    .addOption(new Option('--backend <name>', 'TensorFlow.js backend (auto: tfjs-node-gpu, tfjs-node, wasm, cpu, the first that starts)').choices(BACKENDS).default('auto'))
    .option('--no-discover', 'load only the built-in plugins, not every installed plugin package')
    .action(async (o: MergeOptions) => {
      setCode(await mergeCommand(io, o));
    });

  program
    .command('inspect')
    .description('describe an adapter folder (method, task, rank/alpha/targets or virtual tokens, parameters, sizes); with --base, check that it fits a model the way generate and classify load it (exit code 1 when it does not)')
    .argument('<folder>', 'adapter folder (adapter_config.json + adapter_model.safetensors, or AdapterHub\'s adapter.safetensors)')
    .option('-b, --base <folder-or-hub-id>', 'a base model folder (or a cached hub id) to check the adapter against: the base is loaded with the adapter\'s task (a SEQ_CLS adapter onto a classification head with its number of labels), then the adapter with its method\'s own loader')
    .option('--json', 'print the inspection as JSON')
    .addOption(new Option('--backend <name>', 'TensorFlow.js backend for --base (auto: tfjs-node-gpu, tfjs-node, wasm, cpu, the first that starts)').choices(BACKENDS).default('auto'))
    .option('--no-discover', 'load only the built-in plugins, not every installed plugin package (their methods read adapter folders)')
    .action(async (folder: string, o: InspectOptions) => {
      setCode(await inspectCommand(io, folder, o));
    });
}

// ---------------------------------------------------------------------------------------------

async function inspectCommand(io: Io, folder: string, o: InspectOptions): Promise<number> {
  const { inspectAdapter, isHubId } = await models();
  const paths = new ShownPaths(io.cwd, isHubId);
  const dir = paths.add(folder);
  const ins = await paths.rethrow(async () => {
    const plain = await inspectAdapter(dir);
    if (o.base === undefined) return plain;
    // A model folder gets its note from the library; an adapter is checked as the loader loads it.
    if (plain.kind === 'model') return inspectAdapter(dir, { base: paths.model(o.base) });
    return inspectWithLoader(io, paths, dir, plain, o as InspectOptions & { base: string });
  });
  if (o.json) {
    const rest: Partial<AdapterInspection> = { ...ins };
    delete rest.text;
    io.out(JSON.stringify(paths.showIn(rest), null, 2));
  } else io.out(paths.showText(withEveryMismatch(ins)));
  return ins.compatibility && !ins.compatibility.compatible ? 1 : 0;
}

/** The task `generate` / `classify` load a base with for this adapter; undefined: the base's own. */
function taskForAdapter(ins: AdapterInspection): { task?: ModelTask; numLabels?: number } {
  if (ins.taskType === 'SEQ_CLS') return { task: 'sequence-classification', numLabels: ins.numLabels ?? undefined };
  if (ins.taskType === 'CAUSAL_LM') return { task: 'causal-lm' };
  return {};
}

/**
 * `inspect --base` for an adapter folder: loads the base with the adapter's task (a SEQ_CLS adapter
 * onto a classification head of its number of labels, as `classify` does), checks the adapter's
 * modules and shapes against it (`inspectAdapter`), and when those fit, loads the adapter with its
 * method's own loader, as `generate` and `classify` do: whatever the loader refuses (a file with no
 * tensors, a tensor of the wrong rank, a rank that is not `r`, DoRA, unknown tensors, targets the
 * file lacks, ...) becomes a mismatch in the loader's words, so that inspect never says OK for an
 * adapter the loader refuses.
 * @throws UserError when the base cannot be loaded or no plugin reads the folder's format
 */
async function inspectWithLoader(io: Io, paths: ShownPaths, dir: string, plain: AdapterInspection, o: InspectOptions & { base: string }): Promise<AdapterInspection> {
  const { inspectAdapter, loadAdapters, StateDictError } = await models();
  await startBackend(io, o.backend);
  const base = await loadBase(io, paths, o.base, taskForAdapter(plain));
  try {
    const ins = await inspectAdapter(dir, { base });
    const c = ins.compatibility!;
    if (!c.compatible) return ins; // the shape check explains each mismatch; the loader would stop at the first
    const methods = await adapterMethods(io, o.discover);
    try {
      await loadAdapters(base, [{ name: 'inspected', path: dir }], methods);
    } catch (e) {
      if (!(e instanceof UserError || e instanceof StateDictError)) throw e;
      const hint = e instanceof UserError && e.details.hint ? ` (hint: ${e.details.hint})` : '';
      c.mismatches.push({ name: 'loader', expected: 'an adapter its method\'s loader accepts', got: e.message, message: `the loader refuses it: ${e.message}${hint}` });
      c.compatible = false;
    }
    return ins;
  } finally {
    base.model.dispose();
  }
}

/**
 * `ins.text` with the compatibility section listing every mismatch: the library's rendering
 * stops at 20, and the command promises to explain each one. The section is the rendering's last.
 */
function withEveryMismatch(ins: AdapterInspection): string {
  const c = ins.compatibility;
  const at = c ? ins.text.lastIndexOf('\n  compatibility with ') : -1;
  if (!c || at < 0) return ins.text;
  const L = [`  compatibility with ${c.base}: ${c.compatible ? `OK (${c.checked} checked)` : `${c.mismatches.length} mismatch${c.mismatches.length === 1 ? '' : 'es'} in ${c.checked} checked`}`];
  for (const m of c.mismatches) L.push(`    - ${m.message}`);
  for (const x of c.notes) L.push(`    (${x})`);
  return `${ins.text.slice(0, at)}\n${L.join('\n')}`;
}

async function generateCommand(io: Io, prompt: string | undefined, o: GenerateOptions): Promise<number> {
  const { applyPromptFormat, generateText, isHubId, readPromptFormat } = await models();
  const paths = new ShownPaths(io.cwd, isHubId);
  return paths.rethrow(async () => {
    const adapters = parseAdapters(paths, o.adapter);
    const inspections = await inspectAll(paths, adapters);
    for (const [a, ins] of zip(adapters, inspections)) {
      if (ins.taskType === 'SEQ_CLS') throw new UserError(`adapter "${a.name}" (${a.shown}) is a sequence-classification adapter (task_type SEQ_CLS)`, { hint: `classify with it: peftkit classify --model ${o.model} --adapter ${a.name}=${a.shown}` });
    }
    checkUse(o.use, adapters);
    const given = prompt ?? (await readStdin(io, 'the prompt'));
    if (!given.trim()) throw new UserError('no prompt: give one as an argument or on standard input');

    await startBackend(io, o.backend);
    const methods = adapters.length ? await adapterMethods(io, o.discover) : [];
    const base = await loadBase(io, paths, o.model, { task: 'causal-lm' });
    try {
      const model = await attachAdapters(io, paths, base, adapters, methods, o.model);
      const format = o.raw ? undefined : promptFormatOf(model, o.use, readPromptFormat);
      if (format) io.err(`prompt: wrapped in the ${format.format.shape} template ${format.from} was trained with (--raw sends it as it is)`);
      const text = format ? applyPromptFormat(format.format, given) : given;
      const opts = {
        maxNewTokens: o.maxNewTokens, temperature: o.temperature, topK: o.topK, topP: o.topP, seed: o.seed,
        doSample: o.doSample ? true : undefined, eosTokenId: o.ignoreEos ? null : undefined, chat: o.chat, adapter: o.use,
      };
      if (o.json) {
        const [g] = await generateText(model, [text], opts);
        io.out(JSON.stringify(g, null, 2));
        return 0;
      }
      const started = Date.now();
      let last = '';
      const [g] = await generateText(model, [text], { ...opts, onText: (e) => io.write((last = e.text)) });
      if (!last.endsWith('\n')) io.write('\n');
      const secs = (Date.now() - started) / 1000;
      const n = g.tokenIds.length;
      const why = g.finishReason === 'eos' ? 'stopped at the end-of-sequence token' : `stopped at --max-new-tokens ${o.maxNewTokens}`;
      io.err(`${n} token${n === 1 ? '' : 's'} in ${secs.toFixed(2)} s (${secs > 0 ? (n / secs).toFixed(1) : '-'} tokens/s), ${why}${adapterNote(model, o.use)}`);
      return 0;
    } finally {
      base.model.dispose();
    }
  });
}

async function classifyCommand(io: Io, texts: string[], o: ClassifyOptions): Promise<number> {
  const { classify, classifyByLabelWords, isHubId, readPromptFormat } = await models();
  const paths = new ShownPaths(io.cwd, isHubId);
  return paths.rethrow(async () => {
    const adapters = parseAdapters(paths, o.adapter);
    const inspections = await inspectAll(paths, adapters);
    checkUse(o.use, adapters);
    // A causal-LM adapter trained to write label words (its prompt_format.json says which) classifies
    // by their likelihood; any other causal-LM adapter is no classifier.
    const chosen = adapters.find((a) => a.name === o.use) ?? adapters[0];
    const wordFormat = chosen && inspections[adapters.indexOf(chosen)].taskType === 'CAUSAL_LM' ? readPromptFormat(chosen.path) : undefined;
    if (wordFormat?.label_words?.length) return classifyWithLabelWords(io, paths, texts, o, adapters, chosen, wordFormat, classifyByLabelWords);
    for (const [a, ins] of zip(adapters, inspections)) {
      if (ins.taskType === 'CAUSAL_LM') throw new UserError(`adapter "${a.name}" (${a.shown}) is a causal-LM adapter (task_type CAUSAL_LM) without label words in a prompt_format.json, so not a classifier`, { hint: `generate with it: peftkit generate --model ${o.model} --adapter ${a.name}=${a.shown}` });
    }
    // The base's head is built with the adapter's number of labels, so that its saved head loads.
    const counts = [...new Set(inspections.map((i) => i.numLabels).filter((x): x is number => x !== null))];
    if (counts.length > 1) {
      throw new UserError(`the adapters' heads have different numbers of labels (${zip(adapters, inspections).map(([a, i]) => `${a.name}: ${i.numLabels ?? '?'}`).join(', ')}); one base serves one head size`, { hint: 'classify with each group of adapters in its own run' });
    }
    // Names: --labels, else those the adapter was trained with (its prompt_format.json), else the base config's.
    const labels = o.labels?.split(',').map((s) => s.trim()) ?? (chosen ? readPromptFormat(chosen.path)?.labels : undefined);
    if (labels && (labels.some((l) => !l) || (counts.length && labels.length !== counts[0]))) {
      throw new UserError(`--labels gives ${labels.length} name(s)${counts.length ? ` but the adapter's head has ${counts[0]} labels` : ''}${labels.some((l) => !l) ? ', with an empty one' : ''}`, { hint: 'give one non-empty name per label, in label-id order, separated by commas' });
    }
    const numLabels = counts[0] ?? labels?.length;
    const input = texts.length ? texts : (await readStdin(io, 'the texts, one per line')).split(/\r?\n/).filter((l) => l.trim());
    if (!input.length) throw new UserError('no text to classify: give texts as arguments or on standard input, one per line');

    await startBackend(io, o.backend);
    const methods = adapters.length ? await adapterMethods(io, o.discover) : [];
    const base = await loadBase(io, paths, o.model, { task: 'sequence-classification', numLabels });
    try {
      if (labels) {
        base.model.config.id2label = Object.fromEntries(labels.map((l, i) => [String(i), l]));
        base.model.config.label2id = Object.fromEntries(labels.map((l, i) => [l, i]));
      }
      const model = await attachAdapters(io, paths, base, adapters, methods, o.model);
      printClassifications(io, await classify(model, input, { adapter: o.use, batchSize: o.batchSize }), o.json, adapterNote(model, o.use));
      return 0;
    } finally {
      base.model.dispose();
    }
  });
}

/** Prints one line per text (label, its probability, the text) and every label's probability. */
function printClassifications(io: Io, results: Classification[], json: boolean | undefined, note: string): void {
  if (json) io.out(JSON.stringify(results, null, 2));
  else {
    for (const r of results) {
      io.out(`${r.label}\t${r.probabilities[r.label].toFixed(4)}\t${r.text}`);
      io.out(`  ${Object.entries(r.probabilities).map(([l, p]) => `${l} ${p.toFixed(4)}`).join('  ')}`);
    }
  }
  io.err(`${results.length} text${results.length === 1 ? '' : 's'} classified${note}`);
}

/** `classify` with a causal-LM adapter that writes label words (the main job's kind of adapter). */
async function classifyWithLabelWords(
  io: Io, paths: ShownPaths, texts: string[], o: ClassifyOptions, adapters: AdapterArg[], chosen: AdapterArg, format: PromptFormat,
  byWords: (model: LoadedModel | PeftModel, texts: string[], format: PromptFormat, opts: { adapter?: string }) => Promise<Classification[]>,
): Promise<number> {
  if (o.labels) throw new UserError(`--labels: adapter "${chosen.name}" names its labels itself (${(format.labels ?? format.label_words!).join(', ')})`, { hint: 'leave --labels out' });
  const input = texts.length ? texts : (await readStdin(io, 'the texts, one per line')).split(/\r?\n/).filter((l) => l.trim());
  if (!input.length) throw new UserError('no text to classify: give texts as arguments or on standard input, one per line');
  await startBackend(io, o.backend);
  const methods = await adapterMethods(io, o.discover);
  const base = await loadBase(io, paths, o.model, { task: 'causal-lm' });
  try {
    const model = await attachAdapters(io, paths, base, adapters, methods, o.model);
    io.err(`labels by next-word likelihood after the ${JSON.stringify(format.text_template ?? '{text}')} template: ${format.label_words!.map((w, i) => `${format.labels?.[i] ?? w.trim()} = ${JSON.stringify(w)}`).join(', ')}`);
    printClassifications(io, await byWords(model, input, format, { adapter: o.use ?? chosen.name }), o.json, adapterNote(model, o.use ?? chosen.name));
    return 0;
  } finally {
    base.model.dispose();
  }
}

/** The prompt format of the adapter generation uses (`use`, else the first active), else of the model folder. */
function promptFormatOf(model: LoadedModel | PeftModel, use: string | undefined, readPromptFormat: (folder: string) => PromptFormat | undefined): { format: PromptFormat; from: string } | undefined {
  if ('adapters' in model) {
    const name = use ?? model.active[0];
    const f = name && name !== BASE_ADAPTER_NAME ? model.adapters.get(name)?.promptFormat : undefined;
    if (f) return { format: f, from: `adapter "${name}"` };
    if (name && name !== BASE_ADAPTER_NAME) return undefined;
  }
  const loaded = 'adapters' in model ? model.base : model;
  const f = loaded.source && existsSync(loaded.source) ? readPromptFormat(loaded.source) : undefined;
  return f ? { format: f, from: 'the model' } : undefined;
}

interface MergeOptions {
  model: string;
  adapter: string;
  out: string;
  quantize?: string;
  blocksize?: number;
  doubleQuant: boolean;
  requantize?: boolean;
  backend: BackendChoice;
  discover: boolean;
}

/**
 * `peftkit merge`: loads the base (for SEQ_CLS adapters with the adapter's head size), with
 * `--quantize` quantizes it as the adapter's training did and dequantizes it to float32, checks
 * the adapter against it, loads it, merges it (float32) and writes the merged checkpoint; with
 * `--requantize` reads that back, quantizes it and writes it in the scheme's storage. Says which
 * base the adapter was merged into.
 */
async function mergeCommand(io: Io, o: MergeOptions): Promise<number> {
  const { isHubId, loadPretrained, folderBytes } = await models();
  const { rememberBaseStateNames, tiedHeads, writeMergedModel } = await import('@peftkit/steps');
  const paths = new ShownPaths(io.cwd, isHubId);
  return paths.rethrow(async () => {
    if (o.requantize && !o.quantize) throw new UserError('--requantize needs --quantize <scheme> (the scheme to quantize the merged model with)', { hint: 'e.g. --quantize nf4 --requantize' });
    if (!o.quantize && (o.blocksize !== undefined || !o.doubleQuant)) throw new UserError('--blocksize and --no-double-quant describe --quantize; give --quantize <scheme> too');
    const [adapter] = parseAdapters(paths, [`default=${o.adapter}`]);
    const [ins] = await inspectAll(paths, [adapter]);
    const out = paths.add(o.out);
    if (out === adapter.path) throw new UserError('--out is the adapter folder; write the merged model elsewhere');
    await startBackend(io, o.backend);
    const { plugins, failed } = await loadPlugins([io.cwd], { ...io.load, discover: o.discover });
    for (const f of failed) io.err(`warning: plugin package ${f.name} was not loaded (${f.error}); its methods are unavailable`);
    const registry = createRegistry(plugins);
    const scheme = o.quantize !== undefined ? registry.quantScheme(o.quantize) : undefined;
    if (o.quantize !== undefined) {
      const have = registry.quantSchemes().map((q) => q.name);
      if (!scheme) throw new UserError(`--quantize ${o.quantize}: no such quantization scheme; loaded: ${have.join(', ') || 'none'}`, { hint: 'install @peftkit/qlora (nf4, fp4, int8)' });
      if (!scheme.dequantize || (o.requantize && !scheme.savePretrained)) throw new UserError(`--quantize ${o.quantize}: the scheme cannot ${scheme.dequantize ? 'save quantized checkpoints (--requantize)' : 'dequantize'}`);
    }
    const seqCls = ins.taskType === 'SEQ_CLS';
    const base = await loadBase(io, paths, o.model, seqCls ? { task: 'sequence-classification', numLabels: ins.numLabels ?? undefined } : { task: 'causal-lm' });
    try {
      let mergedInto = `the float32 base ${o.model}`;
      const quantConfig = scheme ? { quant_type: scheme.name, double_quant: o.doubleQuant, ...(o.blocksize !== undefined ? { blocksize: o.blocksize } : {}) } : undefined;
      if (scheme) {
        const report = (await scheme.quantize(base.model, quantConfig, { logger: quietLogger, seed: 0 })) as { quant_type?: string; blocksize?: number } | void;
        const layers = scheme.dequantize!(base.model);
        const bs = report?.blocksize ?? o.blocksize;
        mergedInto = `${o.model} quantized with ${scheme.name}${scheme.name === 'int8' ? '' : ` (blocksize ${bs ?? 'default'}, ${o.doubleQuant ? 'double quantization' : 'no double quantization'})`} and dequantized to float32 (${layers.length} layers): the weights a QLoRA adapter was trained against`;
      }
      const fit = await (await models()).adapterMismatches(adapter.path, base, SHOWN_MISMATCHES);
      if (fit.count) {
        throw new UserError(`adapter ${adapter.shown} does not fit the base model ${o.model}: ${fit.count} mismatch${fit.count === 1 ? '' : 'es'}${fit.lines.map((l) => `\n  - ${l}`).join('')}`, {
          hint: `peftkit inspect ${adapter.shown} --base ${o.model} explains each; use the base the adapter was trained on`,
        });
      }
      const { loadAdapters, PeftModel } = await models();
      const peft = new PeftModel(base);
      rememberBaseStateNames(peft, [...base.model.stateDict().keys()]);
      await loadAdapters(peft, [{ name: 'default', path: adapter.path }], registry.methods());
      const handle = peft.adapters.get('default')!;
      if (!handle.merge) throw new UserError(`adapter ${adapter.shown} is a ${handle.method} adapter, which cannot be merged into the base weights`, { hint: 'serve it with its base instead (peftkit generate / classify --adapter)' });
      io.err(`merging ${handle.method} adapter ${adapter.shown} into ${mergedInto}`);
      // Shared head/embedding weights as they were, so that a merge that changes one unties them.
      const tied = tiedHeads(peft);
      handle.merge();
      await writeMergedModel(peft, handle, out, (m) => io.err(`warning: ${m}`), tied, (m) => io.err(m));
      let what = 'float32';
      if (scheme && o.requantize) {
        const merged = await loadPretrained(out, seqCls ? { task: 'sequence-classification', numLabels: ins.numLabels ?? undefined } : { task: 'causal-lm' });
        try {
          await scheme.quantize(merged.model, quantConfig, { logger: quietLogger, seed: 0 });
          const { writeFolderAtomic } = await models();
          writeFolderAtomic(out, (tmp) => scheme.savePretrained!(merged, tmp));
        } finally {
          merged.model.dispose();
        }
        what = `re-quantized with ${scheme.name} (the merged update is rounded to its grid)`;
      }
      io.out(`wrote ${o.out}: the merged model, ${what}, ${folderBytes(out).toLocaleString('en-US')} bytes; merged into ${mergedInto}`);
      return 0;
    } finally {
      base.model.dispose();
    }
  });
}

const quietLogger: StepLogger = { error() {}, warn() {}, info() {}, debug() {} };

// ---------------------------------------------------------------------------------------------

/**
 * Paths as the user typed them and as the library sees them (absolute, from the working
 * directory): errors and output show the typed form.
 */
class ShownPaths {
  private readonly pairs: [abs: string, shown: string][] = [];
  constructor(
    private readonly cwd: string,
    private readonly isHubId: (s: string) => boolean,
  ) {}

  /** Resolves a local path and remembers how it was typed. */
  add(given: string): string {
    const abs = resolve(this.cwd, given);
    if (abs !== given) this.pairs.push([abs, given]);
    // Longest first, so that a folder inside another is replaced whole.
    this.pairs.sort((a, b) => b[0].length - a[0].length);
    return abs;
  }

  /** A model source: an existing folder (resolved), else a hub id as given, else the resolved path (not found). */
  model(given: string): string {
    const abs = resolve(this.cwd, given);
    if (!existsSync(abs) && this.isHubId(given)) return given;
    return this.add(given);
  }

  showText(s: string): string {
    // Whole paths only: a typed `../../tmp/x` contains the absolute `/tmp/x` and must stay as it is.
    for (const [abs, shown] of this.pairs) s = s.replace(new RegExp(`(?<![\\w./-])${abs.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}(?![\\w.-])`, 'g'), () => shown);
    return s;
  }

  /** A deep copy of a JSON-able value with every string's paths shown as typed. */
  showIn<T>(v: T): T {
    return JSON.parse(JSON.stringify(v), (_k, x) => (typeof x === 'string' ? this.showText(x) : x));
  }

  /** Runs `fn`; a UserError it throws is rethrown with the paths shown as typed. */
  async rethrow<T>(fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (e) {
      if (!(e instanceof UserError)) throw e;
      const d = e.details;
      throw new UserError(this.showText(e.message), {
        ...(d.file !== undefined ? { file: this.showText(d.file) } : {}), ...(d.pointer !== undefined ? { pointer: d.pointer } : {}), ...(d.hint !== undefined ? { hint: this.showText(d.hint) } : {}),
      });
    }
  }
}

/** `name=folder` (or a bare folder, named after it), checked for existence. */
function parseAdapters(paths: ShownPaths, specs: string[]): AdapterArg[] {
  const out: AdapterArg[] = [];
  for (const spec of specs) {
    const eq = spec.indexOf('=');
    const shown = eq >= 0 ? spec.slice(eq + 1) : spec;
    const name = eq >= 0 ? spec.slice(0, eq) : basename(resolve(shown)).replace(/[^A-Za-z0-9_.-]/g, '_');
    if (!name || !shown) throw new UserError(`--adapter ${spec}: expected name=folder`, { hint: 'e.g. --adapter tigrinya=./adapters/gpt2-lora-tigrinya' });
    if (out.some((a) => a.name === name)) throw new UserError(`--adapter: the name "${name}" is given twice`, { hint: 'give each adapter its own name: --adapter a=folder1 --adapter b=folder2' });
    const path = paths.add(shown);
    if (!existsSync(path)) throw new UserError(`adapter folder not found: ${shown}`, { file: shown, hint: 'give the folder that holds adapter_config.json' });
    if (!statSync(path).isDirectory()) throw new UserError(`${shown} is a file; an adapter is a folder holding adapter_config.json and the weights`, { file: shown, hint: 'give the folder that holds the file' });
    out.push({ name, path, shown });
  }
  return out;
}

/** Inspects each adapter folder (config and headers only); a model checkpoint given as an adapter is an error. */
async function inspectAll(paths: ShownPaths, adapters: AdapterArg[]): Promise<AdapterInspection[]> {
  const { inspectAdapter } = await models();
  const out: AdapterInspection[] = [];
  for (const a of adapters) {
    const ins = await inspectAdapter(a.path);
    if (ins.kind === 'model') {
      throw new UserError(`${a.shown} is a model checkpoint (${ins.model?.modelType ?? '?'}), not an adapter: it has config.json but no adapter_config.json`, {
        file: paths.add(a.shown), hint: 'give it as the base model (--model); adapters are given as --adapter name=folder',
      });
    }
    if (ins.weightsFile === null) {
      // Say it before loading the base: a pickle-only or weightless folder cannot be served.
      const why = ins.notes.find((x) => /pickle|no weights file/.test(x)) ?? 'no weights file';
      throw new UserError(`adapter "${a.name}" (${a.shown}): ${why}`, { hint: 'give a folder with adapter_model.safetensors (HF PEFT: save_pretrained(folder, safe_serialization=True))' });
    }
    out.push(ins);
  }
  return out;
}

function checkUse(use: string | undefined, adapters: AdapterArg[]): void {
  if (use === undefined || use === BASE_ADAPTER_NAME || adapters.some((a) => a.name === use)) return;
  throw new UserError(`--use ${use}: no adapter of that name; given: ${adapters.map((a) => a.name).join(', ') || 'none'}`, { hint: `load it with --adapter ${use}=folder, or use ${BASE_ADAPTER_NAME} for the base model alone` });
}

async function startBackend(io: Io, choice: BackendChoice): Promise<BackendInfo> {
  const b = await initBackend(choice).catch((e: Error) => {
    throw new UserError(e.message, { hint: 'use --backend wasm (always installed) or --backend cpu' });
  });
  io.err(`backend: ${b.name} (${b.detail})${choice === 'auto' && b.skipped.length ? `; not available: ${b.skipped.join('; ')}` : ''}`);
  return b;
}

/** The methods of the loaded plugins: they read adapter folders. */
async function adapterMethods(io: Io, discover: boolean): Promise<PeftMethod[]> {
  const { plugins, failed } = await loadPlugins([io.cwd], { ...io.load, discover });
  for (const f of failed) io.err(`warning: plugin package ${f.name} was not loaded (${f.error}); its methods are unavailable`);
  return createRegistry(plugins).methods();
}

async function loadBase(io: Io, paths: ShownPaths, given: string, opts: { task?: ModelTask; numLabels?: number }): Promise<LoadedPretrained> {
  const { loadPretrained } = await models();
  const loaded = await loadPretrained(paths.model(given), { ...opts, log: (m) => io.err(m) });
  // Serving trains nothing: frozen weights take matMulLast's frozen path (no weight gradients,
  // Wᵀ made once instead of at every generated token).
  loaded.model.requiresGrad(false);
  const r = loaded.report;
  io.err(`model: ${given} (${loaded.model.config.model_type}, ${loaded.model.task}${opts.numLabels ? `, ${opts.numLabels} labels` : ''}, ${r.numParameters.toLocaleString('en-US')} parameters)`);
  if (r.newlyInitialized.length) io.err(`note: ${r.newlyInitialized.join(', ')} not in the checkpoint: newly initialized${opts.task === 'sequence-classification' ? ' (an adapter\'s saved head replaces it)' : ''}`);
  return loaded;
}

/**
 * Checks each adapter against the loaded base (`inspectAdapter` with the base: module names and
 * features, heads, widths), then loads them all onto it.
 * @throws UserError listing the first mismatches when an adapter does not fit.
 */
async function attachAdapters(io: Io, paths: ShownPaths, base: LoadedModel, adapters: AdapterArg[], methods: PeftMethod[], modelShown: string): Promise<LoadedModel | PeftModel> {
  if (!adapters.length) return base;
  const { adapterMismatches, loadAdapters } = await models();
  for (const a of adapters) {
    const fit = await adapterMismatches(a.path, base, SHOWN_MISMATCHES);
    if (!fit.count) continue;
    throw new UserError(`adapter "${a.name}" (${a.shown}) does not fit the base model ${modelShown}: ${fit.count} mismatch${fit.count === 1 ? '' : 'es'}${fit.lines.map((l) => `\n  - ${l}`).join('')}`, {
      hint: `peftkit inspect ${a.shown} --base ${modelShown} explains each; use the base the adapter was trained on`,
    });
  }
  const logger: StepLogger = {
    error: (m) => io.err(`error: ${m}`),
    warn: (m) => io.err(`warning: ${m}`),
    info: (m) => io.err(paths.showText(m)),
    debug: () => {},
  };
  return loadAdapters(base, adapters.map(({ name, path }) => ({ name, path })), methods, { logger });
}

function adapterNote(model: LoadedModel | PeftModel, use: string | undefined): string {
  if (!('active' in model)) return '';
  return `; adapter: ${use ?? model.active.join(', ')}`;
}

/** All of standard input (`CliOptions.stdin`, else the process's), as UTF-8 text. */
async function readStdin(io: Io, what: string): Promise<string> {
  const stream = io.stdin ?? process.stdin;
  if ((stream as { isTTY?: boolean }).isTTY) io.err(`reading ${what} from standard input (end with Ctrl-D)`);
  const chunks: Buffer[] = [];
  for await (const c of stream) chunks.push(typeof c === 'string' ? Buffer.from(c) : (c as Buffer));
  return Buffer.concat(chunks).toString('utf8').replace(/\r?\n$/, '');
}

function zip<A, B>(a: A[], b: B[]): [A, B][] {
  return a.map((x, i) => [x, b[i]]);
}
