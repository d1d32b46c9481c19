import { existsSync, readFileSync } from 'node:fs';
import { extname, isAbsolute, join, resolve } from 'node:path';
import { UserError, writeFileAtomic, type LocalPath, type SettingsIssue, type StepKind } from '@peftkit/core';
import { BASE_ADAPTER_NAME, PeftModel, applyPromptFormat, generateText, type Generation, type LoadedModel } from '@peftkit/models';
import schema from './generate.schema.json' with { type: 'json' };
import type { GenerateSettings } from './generate.generated.js';

/** The file the step writes into its folder. */
export const GENERATIONS_FILE = 'generations.jsonl';

/**
 * Reads a prompts file: `.jsonl` (one object per line with `prompt` or `text`), else one prompt
 * per non-empty line.
 * @throws UserError naming the file and line for a missing file, bad JSON or a line without a prompt.
 */
export function readPromptsFile(file: string, pointer = '/prompts_file'): string[] {
  if (!existsSync(file)) throw new UserError(`${file}: prompts file not found`, { file, pointer, hint: 'give a path relative to the pipeline file, or an absolute one' });
  const lines = readFileSync(file, 'utf8').split(/\r?\n/);
  if (extname(file).toLowerCase() !== '.jsonl') return lines.filter((l) => l.trim() !== '');
  const out: string[] = [];
  lines.forEach((line, i) => {
    if (!line.trim()) return;
    let row: unknown;
    try {
      row = JSON.parse(line);
    } catch (e) {
      throw new UserError(`${file}:${i + 1}: not valid JSON (${(e as Error).message})`, { file, pointer, hint: 'write one JSON object per line, e.g. {"prompt": "..."}' });
    }
    const r = row as Record<string, unknown> | null;
    const p = r && typeof r === 'object' ? (r.prompt ?? r.text) : undefined;
    if (typeof p !== 'string') throw new UserError(`${file}:${i + 1}: the line has no "prompt" (or "text") string`, { file, pointer, hint: 'write {"prompt": "..."} on each line' });
    out.push(p);
  });
  return out;
}

/**
 * The `generate` step: continues prompts with a causal LM (a base model, or a peft-model with one
 * of its adapters), greedy or sampled as HF's `generate`, and writes one JSON line per prompt to
 * `generations.jsonl` in the step folder (`index`, `prompt`, `adapter`, `generation`, `num_tokens`,
 * `finish_reason`); each generation is also logged. Outputs the file on its `artifact` port.
 */
export const generateStep: StepKind<GenerateSettings> = {
  name: 'generate',
  description: 'Generates text from prompts with a model and, optionally, one of its adapters (HF generate: greedy, or sampling with temperature / top-k / top-p); writes generations.jsonl.',
  inputs: { model: { accepts: ['peft-model', 'base-model', 'quantized-model'], description: 'A causal LM, with or without adapters.' } },
  outputs: { artifact: { type: 'artifact', description: `The ${GENERATIONS_FILE} file written in the step folder.` } },
  settingsSchema: schema,
  localPaths: (settings): LocalPath[] => (settings.prompts_file ? [{ pointer: '/prompts_file', path: settings.prompts_file, expect: 'file' }] : []),
  validate(settings): SettingsIssue[] {
    if (!settings.prompts?.length && !settings.prompts_file) return [{ pointer: '/prompts', message: 'no prompts: give prompts, prompts_file, or both', hint: 'e.g. "prompts": ["Once upon a time"]' }];
    if (settings.adapter === '') return [{ pointer: '/adapter', message: 'adapter is empty', hint: `name an adapter, ${BASE_ADAPTER_NAME} for the base, or null for the active one` }];
    return [];
  },
  async run(ctx, inputs, settings) {
    const model = inputs.model as LoadedModel | PeftModel;
    const at = (p: string) => (isAbsolute(p) ? p : resolve(ctx.pipelineDir, p));
    const prompts = [...(settings.prompts ?? []), ...(settings.prompts_file ? readPromptsFile(at(settings.prompts_file), `/steps/${ctx.step}/settings/prompts_file`) : [])];
    if (!prompts.length) throw new UserError('generate: no prompts to generate from', { pointer: `/steps/${ctx.step}/settings/prompts`, hint: 'give prompts or a prompts_file with at least one prompt' });
    const adapter = settings.adapter ?? undefined;
    if (adapter !== undefined && adapter !== BASE_ADAPTER_NAME && !(model instanceof PeftModel && model.adapters.has(adapter))) {
      const loaded = model instanceof PeftModel ? [...model.adapters.keys()] : [];
      throw new UserError(`generate: no adapter named "${adapter}" on the input model; loaded: ${loaded.join(', ') || 'none (a base model)'}`, { pointer: `/steps/${ctx.step}/settings/adapter`, hint: `use one of those, ${BASE_ADAPTER_NAME} for the base model, or null` });
    }
    const batch = settings.batch_size ?? 8;
    const seed = settings.seed ?? ctx.seed;
    const used = adapter ?? (model instanceof PeftModel ? model.active.join('+') || BASE_ADAPTER_NAME : BASE_ADAPTER_NAME);
    // The format of the adapter in use (one adapter), so that prompts read as its training data did.
    const format = settings.raw || !(model instanceof PeftModel) ? undefined : model.adapters.get(adapter ?? model.active[0] ?? '')?.promptFormat;
    if (format) ctx.logger.info(`prompts wrapped in the ${format.shape} format the adapter was trained with ("raw": true sends them as written)`);
    const modelPrompts = prompts.map((p) => applyPromptFormat(format, p));
    ctx.logger.info(`generating for ${prompts.length} prompt(s) with ${used === BASE_ADAPTER_NAME ? 'the base model' : `adapter ${used}`}: ${settings.do_sample ? `sampling (temperature ${settings.temperature ?? 1}, top_k ${settings.top_k ?? 50}, top_p ${settings.top_p ?? 1}, seed ${seed})` : 'greedy'}, up to ${settings.max_new_tokens ?? 50} new tokens`);
    const results: Generation[] = [];
    const started = Date.now();
    for (let s = 0; s < prompts.length; s += batch) {
      if (ctx.signal.aborted) {
        ctx.logger.warn(`stopped after ${results.length} of ${prompts.length} prompts`);
        break;
      }
      const part = await generateText(model, modelPrompts.slice(s, s + batch), {
        maxNewTokens: settings.max_new_tokens ?? 50,
        doSample: settings.do_sample ?? false,
        temperature: settings.temperature ?? 1,
        topK: settings.top_k ?? 50,
        topP: settings.top_p ?? 1,
        // One stream per batch, so that a batch's draws do not depend on the batch size before it.
        seed: seed + s,
        adapter,
        chat: settings.chat ?? false,
      });
      part.forEach((g, i) => ctx.logger.info(`[${s + i + 1}] ${JSON.stringify(prompts[s + i])} → ${JSON.stringify(g.text)} (${g.tokenIds.length} tokens, ${g.finishReason})`));
      results.push(...part);
    }
    const seconds = (Date.now() - started) / 1000;
    const file = join(ctx.stepDir, GENERATIONS_FILE);
    const lines = results.map((g, index) => JSON.stringify({ index, prompt: prompts[index], ...(format ? { model_prompt: g.prompt } : {}), adapter: used, generation: g.text, num_tokens: g.tokenIds.length, finish_reason: g.finishReason }));
    writeFileAtomic(file, lines.map((l) => `${l}\n`).join(''));
    const tokens = results.reduce((n, g) => n + g.tokenIds.length, 0);
    ctx.logger.info(`wrote ${results.length} generation(s), ${tokens} new tokens in ${seconds.toFixed(1)} s, to ${file}`);
    ctx.recordMetrics({ generations: results.length, new_tokens: tokens, seconds });
    return { artifact: file };
  },
};
