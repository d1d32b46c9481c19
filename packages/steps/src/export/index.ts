import { isAbsolute, join, resolve } from 'node:path';
import { UserError, type StepKind } from '@peftkit/core';
import type * as tf from '@tensorflow/tfjs';
import { folderBytes, hfAdapterSubfolder, readToHost, savePretrained, writeFolderAtomic, writeHfAdapterFiles, type AdapterHandle, type LoadedModel, type PeftModel, type PreTrainedModel } from '@peftkit/models';
import { baseStateNames } from '../inject/base-state.js';
import schema from './export.schema.json' with { type: 'json' };
import type { ExportSettings } from './export.generated.js';

/**
 * Writes the adapter's files into `folder` (a fresh temporary folder): the whole model for `full`,
 * the method's own format when its handle has a `save` hook, else HF PEFT's adapter files.
 * @returns the file names written and the format's name.
 */
function writeAdapter(peft: PeftModel, name: string, folder: string): { files: string[]; format: string } {
  const handle = peft.adapters.get(name)!;
  const source = peft.base.source;
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
  async run(ctx, inputs, settings) {
    const peft = inputs.model as PeftModel;
    const handle = peft.activeAdapter;
    if (!handle) throw new UserError(`export needs exactly one active adapter; active: ${peft.active.join(', ') || 'none'}`);
    const at = (p: string) => (isAbsolute(p) ? p : resolve(ctx.pipelineDir, p));
    const root = settings.path ? at(settings.path) : join(ctx.stepDir, 'adapter');
    const folder = hfAdapterSubfolder(root, handle.name);
    // Writing reads tensors synchronously; on WebGPU (Node) they must be downloaded first.
    await readToHost(handle.method === 'full' ? peft.base.model.namedParameters().map(([, v]) => v) : handle.stateDict().values());
    const { files, format } = writeFolderAtomic(folder, (tmp) => writeAdapter(peft, handle.name, tmp));
    const bytes = folderBytes(folder);
    ctx.logger.info(`exported ${handle.method} adapter "${handle.name}" (${format}) to ${folder}: ${files.join(', ')}; ${bytes.toLocaleString('en-US')} bytes`);
    const row: Record<string, unknown> = { adapter: handle.name, method: handle.method, format, path: folder, adapter_bytes: bytes };

    if (settings.merged) {
      if (handle.method === 'full') ctx.logger.info('merged: the `full` export already is the whole model');
      else {
        if (!handle.merge || !handle.unmerge) throw new UserError(`the "${handle.method}" method cannot be merged into the base weights`, { pointer: `/steps/${ctx.step}/settings/merged`, hint: 'set "merged": false; load the adapter with its base instead' });
        if (peft.base.quantization) throw new UserError('cannot merge into a quantized base model', { pointer: `/steps/${ctx.step}/settings/merged`, hint: 'load the base in full precision, inject, load this adapter and export merged from there; or set "merged": false' });
        const mergedFolder = settings.merged_path ? at(settings.merged_path) : `${root}-merged`;
        handle.merge();
        try {
          const sd = mergedStateDict(peft, handle, (m) => ctx.logger.warn(m));
          const m = peft.base.model;
          // savePretrained reads config, task and stateDict(): give it the merged base's.
          const view = { config: m.config, task: m.task, stateDict: () => sd } as unknown as PreTrainedModel;
          const merged: LoadedModel = { ...peft.base, model: view };
          writeFolderAtomic(mergedFolder, (tmp) => savePretrained(merged, tmp));
        } finally {
          handle.unmerge();
        }
        const mergedBytes = folderBytes(mergedFolder);
        ctx.logger.info(`exported the merged model to ${mergedFolder}: ${mergedBytes.toLocaleString('en-US')} bytes`);
        Object.assign(row, { merged_path: mergedFolder, merged_bytes: mergedBytes });
      }
    }
    ctx.recordMetrics(row);
    return { artifact: folder };
  },
};
