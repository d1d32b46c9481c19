/**
 * HF PEFT's adapter folder, for any method (`PeftModel.save_pretrained` / `from_pretrained` in
 * peft/peft_model.py and peft/utils/save_and_load.py):
 *
 *     adapter_config.json        the method's config + peft_type + base_model_name_or_path,
 *                                `json.dumps(..., indent=2, sort_keys=True)` (no trailing newline)
 *     adapter_model.safetensors  the adapter's tensors, keys as HF PEFT saves them, metadata {"format": "pt"}
 *
 * An adapter not named `default` lives in a subfolder named after it. Method-specific readers
 * (LoRA's config rules, for instance) build on {@link readHfAdapterFolder}.
 */
import { existsSync, mkdirSync, readFileSync, readdirSync, renameSync, rmSync, statSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import type * as tf from '@tensorflow/tfjs';
import { UserError, fsyncDir, writeFileAtomic } from '@peftkit/core';
import { readSafetensors, writeSafetensors } from '../io/safetensors.js';
import type { AdapterHandle } from './peft-model.js';

export const HF_ADAPTER_CONFIG = 'adapter_config.json';
export const HF_ADAPTER_WEIGHTS = 'adapter_model.safetensors';
/** What PEFT versions before safetensors wrote (a pickle); refused, never executed. */
export const HF_ADAPTER_PICKLE = 'adapter_model.bin';

/** Where HF PEFT saves an adapter: the folder itself for `default`, else `<folder>/<name>`. */
export function hfAdapterSubfolder(folder: string, adapterName: string): string {
  return adapterName === 'default' ? folder : join(folder, adapterName);
}

function sortKeysDeep(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(sortKeysDeep);
  if (v && typeof v === 'object') return Object.fromEntries(Object.keys(v).sort().map((k) => [k, sortKeysDeep((v as Record<string, unknown>)[k])]));
  return v;
}

/** Python's `json.dumps(value, indent=2, sort_keys=True)`: sorted keys at every depth, non-ASCII escaped. */
export function pythonJsonDumps(value: unknown): string {
  return JSON.stringify(sortKeysDeep(value), null, 2).replace(/[\u007f-\uffff]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

/**
 * Fills a folder atomically: `write` gets a fresh temporary folder beside `folder`; once it returns,
 * the temporary folder replaces `folder` (an existing one is moved aside first, then deleted), so
 * readers see the old complete folder or the new complete one, never a mix.
 * @returns whatever `write` returns.
 */
export function writeFolderAtomic<T>(folder: string, write: (tmp: string) => T): T {
  const parent = dirname(folder);
  mkdirSync(parent, { recursive: true });
  const tag = `${process.pid}.${Math.random().toString(36).slice(2)}`;
  const tmp = join(parent, `.${basename(folder)}.${tag}.tmp`);
  mkdirSync(tmp);
  let result: T;
  try {
    result = write(tmp);
    fsyncDir(tmp);
  } catch (e) {
    rmSync(tmp, { recursive: true, force: true });
    throw e;
  }
  const old = join(parent, `.${basename(folder)}.${tag}.old`);
  const hadOld = existsSync(folder);
  if (hadOld) renameSync(folder, old);
  renameSync(tmp, folder);
  fsyncDir(parent);
  if (hadOld) rmSync(old, { recursive: true, force: true });
  return result;
}

/** The `adapter_config.json` object HF PEFT writes for `handle`. */
export function hfAdapterConfig(handle: AdapterHandle, baseModelNameOrPath: string | null): Record<string, unknown> {
  if (handle.peftType == null) throw new UserError(`the "${handle.method}" method has no HF PEFT format`, { hint: 'export it with the method\'s own format' });
  return { ...handle.adapterConfig(), peft_type: handle.peftType, base_model_name_or_path: baseModelNameOrPath };
}

/**
 * Writes `handle` as an HF PEFT adapter into `folder` (which should be empty or new):
 * adapter_model.safetensors from `stateDict()` (float32, metadata `{"format": "pt"}`), then
 * adapter_config.json from `adapterConfig()` plus `peft_type` and `base_model_name_or_path`. Each
 * file is written atomically; use {@link writeFolderAtomic} to replace a whole folder at once.
 * @returns the file names written.
 * @throws UserError when the method has no HF PEFT format (`peftType` null).
 */
export function writeHfAdapterFiles(folder: string, handle: AdapterHandle, baseModelNameOrPath: string | null): string[] {
  const config = hfAdapterConfig(handle, baseModelNameOrPath);
  writeSafetensors(join(folder, HF_ADAPTER_WEIGHTS), handle.stateDict(), { format: 'pt' });
  writeFileAtomic(join(folder, HF_ADAPTER_CONFIG), pythonJsonDumps(config));
  return [HF_ADAPTER_WEIGHTS, HF_ADAPTER_CONFIG];
}

/** An HF PEFT adapter folder as read. */
export interface HfAdapterFolder {
  folder: string;
  /** `adapter_config.json` as parsed. */
  config: Record<string, unknown>;
  /** The tensors (float32 / int32) by saved key; the caller disposes them. */
  tensors: Map<string, tf.Tensor>;
  /** The safetensors `__metadata__`. */
  metadata: Record<string, string>;
}

/**
 * Reads an HF PEFT adapter folder, any method.
 * @throws UserError naming the file: folder or config missing (listing adapter subfolders found),
 *   config not a JSON object, only the pickle `adapter_model.bin` present (refused: a pickle can execute code).
 */
export function readHfAdapterFolder(folder: string): HfAdapterFolder {
  if (!existsSync(folder) || !statSync(folder).isDirectory()) throw new UserError(`${folder}: adapter folder not found`, { file: folder, hint: 'give the folder that holds adapter_config.json' });
  const configPath = join(folder, HF_ADAPTER_CONFIG);
  if (!existsSync(configPath)) {
    const subs = readdirSync(folder).filter((n) => existsSync(join(folder, n, HF_ADAPTER_CONFIG)));
    throw new UserError(`${folder}: no ${HF_ADAPTER_CONFIG}; not an HF PEFT adapter folder`, { file: configPath, hint: subs.length ? `named adapters are in subfolders: ${subs.join(', ')}` : 'export an adapter there first' });
  }
  let config: unknown;
  try {
    config = JSON.parse(readFileSync(configPath, 'utf8'));
  } catch (e) {
    throw new UserError(`${configPath}: not valid JSON (${(e as Error).message})`, { file: configPath });
  }
  if (!config || typeof config !== 'object' || Array.isArray(config)) throw new UserError(`${configPath}: must hold a JSON object`, { file: configPath, pointer: '' });
  const weights = join(folder, HF_ADAPTER_WEIGHTS);
  if (!existsSync(weights)) {
    if (existsSync(join(folder, HF_ADAPTER_PICKLE))) {
      throw new UserError(`${join(folder, HF_ADAPTER_PICKLE)}: a PyTorch pickle, which peftkit does not load (a pickle can execute code)`, {
        file: join(folder, HF_ADAPTER_PICKLE), hint: 'convert it to safetensors with PEFT: load it and save_pretrained(folder, safe_serialization=True)',
      });
    }
    throw new UserError(`${folder}: no ${HF_ADAPTER_WEIGHTS} beside ${HF_ADAPTER_CONFIG}`, { file: weights });
  }
  const { tensors, metadata } = readSafetensors(weights);
  return { folder, config: config as Record<string, unknown>, tensors, metadata };
}

/** Total size in bytes of the files in `folder`, subfolders included (an adapter's size on disk). */
export function folderBytes(folder: string): number {
  let n = 0;
  for (const f of readdirSync(folder)) {
    const st = statSync(join(folder, f));
    n += st.isDirectory() ? folderBytes(join(folder, f)) : st.size;
  }
  return n;
}
