/**
 * Where a model lives: a local folder, or a Hugging Face Hub id (`owner/name`) downloaded with
 * @huggingface/hub into a cache laid out as huggingface_hub's
 * (`models--owner--name/{snapshots/<commit>/, refs/<revision>}`).
 */
import { existsSync, readFileSync, statSync } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, isAbsolute, join } from 'node:path';
import { downloadFileToCacheDir, HubApiError, modelInfo } from '@huggingface/hub';
import { UserError, writeFileAtomic } from '@peftkit/core';

/** Files fetched from the hub for a model: config, weights (safetensors only), tokenizer. */
const WANTED = /^(config\.json|generation_config\.json|model(-\d+-of-\d+)?\.safetensors|model\.safetensors\.index\.json|tokenizer\.json|tokenizer_config\.json|special_tokens_map\.json|vocab\.json|merges\.txt|vocab\.txt|chat_template\.jinja|added_tokens\.json)$/;

/** The hub cache folder: `opts.cacheDir`, else `$PEFTKIT_CACHE`, else `~/.cache/peftkit/hub`. */
export function hubCacheDir(cacheDir?: string): string {
  return cacheDir ?? process.env.PEFTKIT_CACHE ?? join(homedir(), '.cache', 'peftkit', 'hub');
}

/**
 * True for strings shaped like a hub repo id (`gpt2`, `openai-community/gpt2`): one or two
 * segments of letters, digits, `-`, `_`, `.`, not starting with `.` or `-`, no `..`.
 */
export function isHubId(s: string): boolean {
  return /^[A-Za-z0-9][\w.-]*(\/[A-Za-z0-9][\w.-]*)?$/.test(s) && !s.includes('..') && !s.endsWith('.git');
}

/** What {@link resolveModelSource} found. */
export interface ResolvedSource {
  /** The local folder holding config.json and the weights. */
  folder: string;
  /** The hub id when the model came from (or through the cache of) the hub. */
  hubId?: string;
  /** The commit of the hub snapshot. */
  commit?: string;
}

/** Options of {@link resolveModelSource}. */
export interface ResolveSourceOptions {
  /** Branch, tag or commit on the hub (default `main`); ignored for local folders. */
  revision?: string;
  /** Hub cache folder; see {@link hubCacheDir}. */
  cacheDir?: string;
  /** `fetch` for the hub calls (tests, proxies). */
  fetch?: typeof fetch;
  /** Never touch the network (also when `HF_HUB_OFFLINE=1`): only the cache. */
  offline?: boolean;
  /** Called with progress lines (`downloading config.json`). */
  log?: (message: string) => void;
}

function cachedSnapshot(cache: string, id: string, revision: string): { folder: string; commit: string } | undefined {
  const repo = join(cache, `models--${id.split('/').join('--')}`);
  const commit = /^[0-9a-f]{40}$/.test(revision) ? revision : existsSync(join(repo, 'refs', revision)) ? readFileSync(join(repo, 'refs', revision), 'utf8').trim() : undefined;
  if (!commit) return undefined;
  const folder = join(repo, 'snapshots', commit);
  return existsSync(join(folder, 'config.json')) ? { folder, commit } : undefined;
}

/**
 * Turns a model source into a local folder. An existing folder is used as it is. Otherwise a
 * string shaped like a hub id is looked up in the cache, then downloaded (config, safetensors
 * weights, tokenizer files only) where there is network.
 * @throws UserError when a path-like source does not exist, when the hub cannot be reached (saying
 *   which local folder to provide instead), when the repo is not found or is private, or when it has
 *   only pickle weights.
 */
export async function resolveModelSource(source: string, opts: ResolveSourceOptions = {}): Promise<ResolvedSource> {
  if (existsSync(source)) {
    if (!statSync(source).isDirectory()) {
      throw new UserError(`${source} is a file; a model is a folder holding config.json and model.safetensors`, { file: source, hint: 'give the folder that holds the file' });
    }
    return { folder: source };
  }
  if (!isHubId(source) || isAbsolute(source)) {
    throw new UserError(`model folder not found: ${source}`, { file: source, hint: 'give an existing folder (relative paths are resolved from the pipeline file) or a Hugging Face Hub id such as "openai-community/gpt2"' });
  }
  const revision = opts.revision ?? 'main';
  const cache = hubCacheDir(opts.cacheDir);
  const hit = cachedSnapshot(cache, source, revision);
  const offline = opts.offline ?? ['1', 'true', 'yes'].includes((process.env.HF_HUB_OFFLINE ?? '').toLowerCase());
  if (hit) {
    opts.log?.(`using cached ${source}@${revision} (${hit.commit.slice(0, 10)}) from ${hit.folder}`);
    return { folder: hit.folder, hubId: source, commit: hit.commit };
  }
  const noNetwork = (why: string) =>
    new UserError(
      `"${source}" is not a local folder and cannot be downloaded from the Hugging Face Hub (${why}). ` +
        `Download it where there is network (e.g. \`huggingface-cli download ${source}${opts.revision ? ` --revision ${opts.revision}` : ''} --local-dir ./models/${source.split('/').pop()}\`) ` +
        `and set "model" to that local folder (a folder with config.json and model.safetensors), or copy the cache into ${cache}.`,
      { hint: `provide a local folder, e.g. "./models/${source.split('/').pop()}"` },
    );
  if (offline) throw noNetwork('offline mode: HF_HUB_OFFLINE is set and the cache has no copy');

  const credentials = process.env.HF_TOKEN ? { accessToken: process.env.HF_TOKEN } : {};
  let sha: string;
  let files: string[];
  try {
    const info = await modelInfo({ name: source, revision, additionalFields: ['sha', 'filePaths'], fetch: opts.fetch, ...credentials });
    sha = info.sha;
    files = info.filePaths;
  } catch (e) {
    if (e instanceof HubApiError) {
      if (e.statusCode === 401 || e.statusCode === 403 || e.statusCode === 404) {
        throw new UserError(`"${source}" (revision ${revision}) was not found on the Hugging Face Hub, or it is private or gated (HTTP ${e.statusCode})`, {
          hint: 'check the id and revision; for a private or gated model set HF_TOKEN; for a local folder check the path',
        });
      }
      throw noNetwork(`HTTP ${e.statusCode}`);
    }
    const cause = (e as { cause?: { code?: string } }).cause?.code;
    throw noNetwork(`no network: ${(e as Error).message}${cause ? ` (${cause})` : ''}`);
  }
  const wanted = files.filter((f) => WANTED.test(f));
  if (!wanted.some((f) => f.endsWith('.safetensors'))) {
    const bins = files.filter((f) => /\.(bin|pt|pth|ckpt)$/.test(f));
    throw new UserError(`"${source}" has no safetensors weights${bins.length ? ` (only ${bins.join(', ')}, PyTorch pickles that peftkit does not load)` : ''}`, {
      hint: 'convert to safetensors (`model.save_pretrained(folder, safe_serialization=True)` in Python) and use that folder',
    });
  }
  let folder = '';
  for (const path of wanted) {
    opts.log?.(`downloading ${source}/${path}`);
    try {
      const p = await downloadFileToCacheDir({ repo: source, path, revision: sha, cacheDir: cache, fetch: opts.fetch, ...credentials });
      folder = dirname(p);
    } catch (e) {
      throw noNetwork(`download of ${path} failed: ${(e as Error).message}`);
    }
  }
  const refs = join(cache, `models--${source.split('/').join('--')}`, 'refs');
  writeFileAtomic(join(refs, revision), sha);
  return { folder, hubId: source, commit: sha };
}
