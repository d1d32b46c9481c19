import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { copyFileSync, mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { UserError } from '@peftkit/core';
import { hubCacheDir, isHubId, resolveModelSource } from './hub.js';
import { hfFixture, scratch } from '../testing/index.js';

const tmp = scratch('peftkit-hub-');
after(() => tmp.cleanup());

/** A fetch that fails as Node's does without network. */
const offlineFetch = (async () => {
  throw Object.assign(new TypeError('fetch failed'), { cause: { code: 'ENOTFOUND' } });
}) as unknown as typeof fetch;
let calls = 0;
const countingFetch = (async (...args: Parameters<typeof fetch>) => {
  calls++;
  return offlineFetch(...args);
}) as typeof fetch;

test('hub ids and paths are told apart', () => {
  for (const id of ['gpt2', 'openai-community/gpt2', 'HuggingFaceTB/SmolLM-135M-Instruct', 'a/b.c_d-e']) assert.ok(isHubId(id), id);
  for (const p of ['./gpt2', '../x', '/abs/model', 'a/b/c', 'a\\b', '.hidden', 'x/..', 'owner/name.git', '']) assert.ok(!isHubId(p), p);
});

test('an existing local folder is used as it is, without touching the network', async () => {
  calls = 0;
  const tiny = hfFixture('ckpt-gpt2-tiny-vocab');
  assert.deepEqual(await resolveModelSource(tiny, { fetch: countingFetch }), { folder: tiny });
  // A relative folder that happens to look like a hub id (`owner/name`) is still local.
  const rel = relative(process.cwd(), tiny);
  assert.equal((await resolveModelSource(rel, { fetch: countingFetch })).folder, rel);
  assert.equal(calls, 0);
});

test('a path that does not exist is "folder not found", not a download', async () => {
  calls = 0;
  await assert.rejects(resolveModelSource('./models/nope', { fetch: countingFetch }), (e: unknown) => e instanceof UserError && /model folder not found: \.\/models\/nope/.test(e.message));
  await assert.rejects(resolveModelSource(join(hfFixture('ckpt-gpt2-tiny-vocab'), 'config.json')), /is a file; a model is a folder/);
  assert.equal(calls, 0);
});

test('no network: the error says which local folder to provide', async () => {
  const cacheDir = join(tmp.dir, 'cache-empty');
  await assert.rejects(resolveModelSource('openai-community/gpt2', { fetch: offlineFetch, cacheDir }), (e: unknown) => {
    assert.ok(e instanceof UserError);
    assert.match(e.message, /"openai-community\/gpt2" is not a local folder and cannot be downloaded from the Hugging Face Hub \(no network: fetch failed \(ENOTFOUND\)\)/);
    assert.match(e.message, /huggingface-cli download openai-community\/gpt2 --local-dir \.\/models\/gpt2/);
    assert.match(e.message, /set "model" to that local folder/);
    assert.equal(e.details.hint, 'provide a local folder, e.g. "./models/gpt2"');
    return true;
  });
  await assert.rejects(resolveModelSource('gpt2', { offline: true, cacheDir, fetch: countingFetch }), /offline mode/);
});

test('a 404 from the hub says not found / private, and mentions HF_TOKEN', async () => {
  const notFound = (async () => new Response('{"error":"Repository not found"}', { status: 404, headers: { 'content-type': 'application/json' } })) as typeof fetch;
  await assert.rejects(resolveModelSource('someone/missing-model', { fetch: notFound, cacheDir: join(tmp.dir, 'c404') }), (e: unknown) =>
    e instanceof UserError && /was not found on the Hugging Face Hub, or it is private or gated \(HTTP 404\)/.test(e.message) && /HF_TOKEN/.test(e.details.hint ?? ''));
});

test('a snapshot already in the cache is used offline (huggingface_hub layout)', async () => {
  const cacheDir = join(tmp.dir, 'cache');
  const commit = 'a'.repeat(40);
  const repo = join(cacheDir, 'models--mozilla-ai--tiny-gpt2');
  const snap = join(repo, 'snapshots', commit);
  mkdirSync(snap, { recursive: true });
  const src = hfFixture('ckpt-gpt2-tiny-vocab');
  for (const f of readdirSync(src)) copyFileSync(join(src, f), join(snap, f));
  mkdirSync(join(repo, 'refs'));
  writeFileSync(join(repo, 'refs', 'main'), commit);
  calls = 0;
  const r = await resolveModelSource('mozilla-ai/tiny-gpt2', { cacheDir, fetch: countingFetch, offline: true });
  assert.deepEqual(r, { folder: snap, hubId: 'mozilla-ai/tiny-gpt2', commit });
  assert.equal((await resolveModelSource('mozilla-ai/tiny-gpt2', { cacheDir, revision: commit, fetch: countingFetch })).folder, snap);
  assert.equal(calls, 0);
  await assert.rejects(resolveModelSource('mozilla-ai/tiny-gpt2', { cacheDir, revision: 'v2', offline: true }), /offline mode/);
});

test('cache folder: option, then PEFTKIT_CACHE, then ~/.cache/peftkit/hub', () => {
  const saved = process.env.PEFTKIT_CACHE;
  try {
    assert.equal(hubCacheDir('/x'), '/x');
    process.env.PEFTKIT_CACHE = '/y';
    assert.equal(hubCacheDir(), '/y');
    delete process.env.PEFTKIT_CACHE;
    assert.match(hubCacheDir(), /\.cache\/peftkit\/hub$/);
  } finally {
    if (saved === undefined) delete process.env.PEFTKIT_CACHE;
    else process.env.PEFTKIT_CACHE = saved;
  }
});
