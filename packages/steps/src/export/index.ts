import { existsSync } from 'node:fs';
import { isAbsolute, join, relative, resolve } from 'node:path';
import { UserError, type StepKind } from '@peftkit/core';
import * as tf from '@tensorflow/tfjs';
import { folderBytes, hfAdapterSubfolder, isHubId, readToHost, savePretrained, writeFolderAtomic, writeHfAdapterFiles, writePromptFormat, type AdapterHandle, type LoadedModel, type PeftModel, type PreTrainedModel } from '@peftkit/models';
import { baseStateNames } from '../inject/base-state.js';
import schema from './export.schema.json' with { type: 'json' };
import type { ExportSettings } from './export.generated.js';

/**
 * HF's `base_model_name_or_path` for an exported adapter: a hub id as given; a local base folder
 * as its path relative to the adapter's folder (`../../models/spam-base`), which stays right when
 * the tree moves together and names no machine's layout (an absolute path would); null for a model
 * built from a config (`from_config`: random weights, nothing to load it from).
 * @param source - the loaded base's source (`LoadedModel.source`)
 * @param adapterFolder - where the adapter is written (its final place)
 */
export function exportedBaseModelName(source: string | undefined, adapterFolder: string): string | null {
  if (!source || source === 'from_config') return null;
  if (isAbsolute(source)) return existsSync(join(source, 'config.json')) ? relative(adapterFolder, source).split('\\').join('/') : null;
  return isHubId(source) ? source : null;
}

/**
 * Writes the adapter's files into `folder` (a fresh temporary folder): the whole model for `full`,
 * the method's own format when its handle has a `save` hook, else HF PEFT's adapter files.
 * @param baseName - `base_model_name_or_path` to record ({@link exportedBaseModelName})
 * @returns the file names written and the format's name.
 */
function writeAdapter(peft: PeftModel, name: string, folder: string, baseName: string | null): { files: string[]; format: string } {
  const handle = peft.adapters.get(name)!;
  const source = baseName;
  if (handle.method === 'full') return { files: savePretrained(peft.base, folder), format: 'hf-checkpoint' };
  if (handle.save) return { files: handle.save(folder, { baseModelNameOrPath: source }), format: `${handle.method} (own format)` };
  if (handle.peftType == null) {
    throw new UserError(`the "${handle.method}" method has neither an HF PEFT form nor its own save hook, so it cannot be exported`, { hint: 'ask the method\'s plugin to implement AdapterHandle.save' });
  }
  return { files: writeHfAdapterFiles(folder, handle, source), format: 'hf-peft' };
}

/**
 * The base model's tensors after `handle.merge()`, under the base's own names (HF's
 * `merge_and_unload().state_dict()`): the names recorded before injection (else every name without
 * an adapter segment such as `.lora_A.` or `.modules_to_save.`), and for names the adapter saves
 * whole (`modules_to_save` heads, trained biases) the adapter's tensor.
 */
function mergedStateDict(peft: PeftModel, handle: AdapterHandle, warn: (m: string) => void): Map<string, tf.Tensor> {
  const live = peft.base.model.stateDict();
  let names = baseStateNames(peft);
  if (!names) {
    warn('the base model\'s names before injection are unknown (the model did not come from an inject step); leaving out names with adapter segments');
    names = [...live.keys()].filter((n) => !/\.(lora_[A-Za-z_]+|modules_to_save|adapters|prompt_encoder)\./.test(n));
  }
  const own = new Map([...handle.stateDict()].map(([k, t]) => [k.replace(/^base_model\.model\./, ''), t]));
  const out = new Map<string, tf.Tensor>();
  for (const n of names) {
    const t = own.get(n) ?? live.get(n);
    if (t) out.set(n, t);
  }
  return out;
}

/** An output head that shares its weight with the input embedding, as the base was built. */
export interface TiedHead {
  /** The head's weight name (`lm_head.weight`). */
  head: string;
  /** The embedding weight's name (`transformer.wte.weight`, `model.embed_tokens.weight`). */
  embedding: string;
  /** A copy of the shared weight before the merge [vocab, hidden]: what the adapted model's head computes with. */
  before: tf.Tensor;
}

/**
 * The output heads tied to the input embedding (one variable under two names in the live model,
 * HF's `tie_word_embeddings`), each with a copy of its weight. Call before `handle.merge()`.
 */
export function tiedHeads(peft: PeftModel): TiedHead[] {
  const m = peft.base.model;
  const live = m.stateDict();
  const names = baseStateNames(peft) ?? [...live.keys()];
  const out: TiedHead[] = [];
  for (const h of m.outputHeadNames()) {
    const head = `${h}.weight`;
    const w = live.get(head);
    const embedding = w && names.find((n) => n !== head && live.get(n) === w);
    if (w && embedding) out.push({ head, embedding, before: tf.clone(w) });
  }
  return out;
}

/**
 * Unties a head whose merged embedding no longer equals what the adapted model's head used: the
 * adapter saved the embedding whole (`modules_to_save: ["embed_tokens"]`: a trained copy, while
 * the head keeps the original, as in HF PEFT) or merged LoRA into it. Reloading such a folder with
 * `tie_word_embeddings: true` would tie the head to the new embedding and give another model, so
 * the head is written as its own tensor and the config says false.
 * @returns the config fields to override (empty when nothing had to be untied)
 */
async function untieDiverged(tied: TiedHead[], sd: Map<string, tf.Tensor>, log: (m: string) => void): Promise<Record<string, unknown>> {
  let untie = false;
  for (const { head, embedding, before } of tied) {
    const e = sd.get(embedding);
    if (!e) continue;
    // Read asynchronously: WebGPU in Node has no synchronous read.
    const differs = tf.tidy(() => tf.any(tf.notEqual(e, before)));
    const changed = (await differs.data())[0] !== 0;
    differs.dispose();
    if (!changed) continue;
    sd.set(head, before);
    untie = true;
    log(`merged: ${embedding} differs from the ${head} the adapted model uses (the adapter trained or merged into the embedding); writing ${head} as its own tensor with "tie_word_embeddings": false`);
  }
  return untie ? { tie_word_embeddings: false } : {};
}

/**
 * Writes the base with `handle` merged (call `handle.merge()` first) as an HF checkpoint folder
 * (config.json, model.safetensors with the base's own tensor names, the tokenizer), atomically:
 * what HF's `merge_and_unload().save_pretrained(folder)` writes. Used by the `export` step's
 * `merged` and by `peftkit merge`. With `tied` (from {@link tiedHeads}, taken before the merge) a
 * head whose embedding the merge changed is written untied. The adapter's prompt format goes along.
 * @returns the file names written.
 */
export async function writeMergedModel(peft: PeftModel, handle: AdapterHandle, folder: string, warn: (m: string) => void, tied: TiedHead[] = [], info: (m: string) => void = () => {}): Promise<string[]> {
  const sd = mergedStateDict(peft, handle, warn);
  const m = peft.base.model;
  const config = { ...m.config, ...(await untieDiverged(tied, sd, info)) };
  // savePretrained reads the tensors synchronously; on WebGPU (Node) they must be downloaded first.
  await readToHost(sd.values());
  // savePretrained reads config, task and stateDict(): give it the merged base's.
  const view = { config, task: m.task, stateDict: () => sd } as unknown as PreTrainedModel;
  const merged: LoadedModel = { ...peft.base, model: view };
  return writeFolderAtomic(folder, (tmp) => [...savePretrained(merged, tmp), ...(handle.promptFormat ? [writePromptFormat(tmp, handle.promptFormat)] : [])]);
}

/**
 * The `export` step: writes the active adapter as an HF PEFT adapter folder (adapter_config.json
 * with `base_model_name_or_path`, adapter_model.safetensors), atomically, and reports its size;
 * optionally also the merged full model (merge, save_pretrained, unmerge: the model in memory is
 * left as it was).
 */
export const exportStep: StepKind<ExportSettings> = {
  name: 'export',
  description: 'Writes the trained adapter as an HF PEFT adapter folder (and optionally the merged model).',
  inputs: { model: { accepts: ['peft-model'], description: 'The model whose active adapter is exported.' } },
  outputs: { artifact: { type: 'artifact', description: 'The folder holding the exported adapter.' } },
  settingsSchema: schema,
  // The same refusal as in run(), at validation time: a merged export after a quantize step would
  // otherwise fail only once training is done.
  validateUpstream(settings, upstream) {
    const q = upstream.find((u) => u.kind === 'quantize');
    if (!settings.merged || !q) return [];
    return [{ pointer: '/merged', message: `cannot merge into a quantized base model: step "${q.name}" quantizes it, and merged weights need full precision`, hint: 'set "merged": false and export the adapter alone (it loads onto the full-precision base); or, after training, load the base in full precision, load this adapter and export merged from there' }];
  },
  async run(ctx, inputs, settings) {
    const peft = inputs.model as PeftModel;
    const handle = peft.activeAdapter;
    if (!handle) throw new UserError(`export needs exactly one active adapter; active: ${peft.active.join(', ') || 'none'}`);
    const at = (p: string) => (isAbsolute(p) ? p : resolve(ctx.pipelineDir, p));
    const root = settings.path ? at(settings.path) : join(ctx.stepDir, 'adapter');
    const folder = hfAdapterSubfolder(root, handle.name);
    // Writing reads tensors synchronously; on WebGPU (Node) they must be downloaded first.
    await readToHost(handle.method === 'full' ? peft.base.model.namedParameters().map(([, v]) => v) : handle.stateDict().values());
    const { files, format } = writeFolderAtomic(folder, (tmp) => {
      const written = writeAdapter(peft, handle.name, tmp, exportedBaseModelName(peft.base.source, folder));
      if (handle.promptFormat) written.files.push(writePromptFormat(tmp, handle.promptFormat));
      return written;
    });
    const bytes = folderBytes(folder);
    ctx.logger.info(`exported ${handle.method} adapter "${handle.name}" (${format}) to ${folder}: ${files.join(', ')}; ${bytes.toLocaleString('en-US')} bytes`);
    ctx.summarize?.(`${handle.method === 'full' ? 'model' : 'adapter'}: ${folder} (${format}, ${bytes.toLocaleString('en-US')} bytes)`);
    const row: Record<string, unknown> = { adapter: handle.name, method: handle.method, format, path: folder, adapter_bytes: bytes };

    if (settings.merged) {
      if (handle.method === 'full') ctx.logger.info('merged: the `full` export already is the whole model');
      else {
        if (!handle.merge || !handle.unmerge) throw new UserError(`the "${handle.method}" method cannot be merged into the base weights`, { pointer: `/steps/${ctx.step}/settings/merged`, hint: 'set "merged": false; load the adapter with its base instead' });
        if (peft.base.quantization) throw new UserError('cannot merge into a quantized base model', { pointer: `/steps/${ctx.step}/settings/merged`, hint: 'load the base in full precision, inject, load this adapter and export merged from there; or set "merged": false' });
        const mergedFolder = settings.merged_path ? at(settings.merged_path) : `${root}-merged`;
        const tied = tiedHeads(peft);
        handle.merge();
        try {
          await writeMergedModel(peft, handle, mergedFolder, (m) => ctx.logger.warn(m), tied, (m) => ctx.logger.info(m));
        } finally {
          handle.unmerge();
          tf.dispose(tied.map((t) => t.before));
        }
        const mergedBytes = folderBytes(mergedFolder);
        ctx.summarize?.(`merged model: ${mergedFolder} (${mergedBytes.toLocaleString('en-US')} bytes)`);
        ctx.logger.info(`exported the merged model to ${mergedFolder}: ${mergedBytes.toLocaleString('en-US')} bytes`);
        Object.assign(row, { merged_path: mergedFolder, merged_bytes: mergedBytes });
      }
    }
    ctx.recordMetrics(row);
    return { artifact: folder };
  },
};
