/**
 * Checks what a finished run of a fine-tuning pipeline left behind, as CI does after the README's
 * main command: the evaluation report holds finite metrics, and the exported adapter loads onto
 * its base with the real loader and changes the base's logits.
 *
 *   node --conditions=peftkit-source --import tsx tools/e2e/check-run.ts runs/spam-lora/latest models/spam-base
 *
 * Exits 1 with one line per failed check; prints the checked figures on success.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { createRegistry, discoverPlugins, importPlugin, initBackend } from '@peftkit/core';
import { loadAdapters, loadPretrained } from '@peftkit/models';
import * as tf from '@tensorflow/tfjs';

const [runArg, baseArg] = process.argv.slice(2);
if (!runArg || !baseArg) {
  console.error('usage: check-run.ts <run folder> <base model folder>');
  process.exit(2);
}
const runDir = resolve(runArg);
const failures: string[] = [];
const check = (ok: boolean, what: string) => {
  if (!ok) failures.push(what);
  return ok;
};

const reportFile = join(runDir, 'evaluate', 'report.json');
if (check(existsSync(reportFile), `no evaluation report at ${reportFile}`)) {
  const rows = JSON.parse(readFileSync(reportFile, 'utf8')).rows as { metric: string; with_adapter: number | null; without_adapter: number | null }[];
  for (const m of ['accuracy', 'f1', 'reference_perplexity']) {
    const r = rows.find((x) => x.metric === m);
    if (check(!!r && Number.isFinite(r.with_adapter) && Number.isFinite(r.without_adapter), `report.json: ${m} is missing or not finite (${JSON.stringify(r)})`)) {
      console.log(`${m}: ${r!.with_adapter} with the adapter, ${r!.without_adapter} without`);
    }
  }
}

const adapter = join(runDir, 'export', 'adapter');
if (check(existsSync(join(adapter, 'adapter_config.json')), `no exported adapter at ${adapter}`)) {
  await initBackend('wasm');
  const base = await loadPretrained(resolve(baseArg));
  const plugins = await Promise.all(discoverPlugins(process.cwd()).map((n) => importPlugin(n, process.cwd())));
  const ids = tf.tensor2d([base.tokenizer!.encode('Dear friend, you have won a prize. This mail is').slice(0, 32)], undefined, 'int32');
  const before = (base.model.forward({ inputIds: ids }) as { logits: tf.Tensor }).logits;
  const peft = await loadAdapters(base, [{ name: 'check', path: adapter }], createRegistry(plugins).methods());
  const after = (peft.base.model.forward({ inputIds: ids }) as { logits: tf.Tensor }).logits;
  const change = after.sub(before).abs().max().dataSync()[0];
  if (check(Number.isFinite(change) && change > 0, `the adapter loaded but does not change the logits (max change ${change})`)) console.log(`adapter ${adapter}: loads onto ${baseArg}; largest logit change ${change.toExponential(3)}`);
}

if (failures.length) {
  for (const f of failures) console.error(`check-run: ${f}`);
  process.exit(1);
}
console.log('check-run: ok');
