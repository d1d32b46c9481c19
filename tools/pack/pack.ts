// Building, packing and installing the workspace's npm packages the way a user gets them: compiled
// dist/ in a tarball, installed into a project that has never seen the workspace.
import { spawnSync, type SpawnSyncReturns } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join, resolve } from 'node:path';
import { repoRoot } from '@peftkit/models/testing';

/** One package of the npm workspace (packages/*, plugins/*). */
export interface WorkspacePackage {
  name: string;
  version: string;
  /** Absolute folder. */
  dir: string;
  private: boolean;
  /** Has a tsconfig.json that `tsc -b` builds to dist/ (the CommonJS nx-plugin has none). */
  built: boolean;
}

/** Every package of the workspace, by package name. */
export function workspacePackages(root = repoRoot()): Map<string, WorkspacePackage> {
  const out = new Map<string, WorkspacePackage>();
  for (const group of ['packages', 'plugins']) {
    for (const entry of readdirSync(join(root, group))) {
      const dir = join(root, group, entry);
      const pj = join(dir, 'package.json');
      if (!existsSync(pj)) continue;
      const pkg = JSON.parse(readFileSync(pj, 'utf8'));
      out.set(pkg.name, { name: pkg.name, version: pkg.version, dir, private: pkg.private === true, built: existsSync(join(dir, 'tsconfig.json')) });
    }
  }
  return out;
}

/** npm settings that say where the registry and the cache are; kept when they come from the environment. */
const KEEP_NPM_CONFIG = /^npm_config_(cache|registry|cafile|ca|userconfig|globalconfig|proxy|https_proxy|http_proxy|noproxy|strict_ssl|fetch_retries|fetch_timeout|@[^_]+:registry|\/\/.*)$/i;

/**
 * Environment for npm and the installed CLI: without the npm_* variables npm sets for scripts when
 * the tests run under `npm test` (`npm_config_local_prefix` and the workspace's package fields
 * would point a nested npm back at the workspace), except the registry and cache settings, and
 * without NODE_OPTIONS (a `--conditions=peftkit-source` there would send the installed packages
 * looking for src/*.ts, which tarballs do not ship).
 */
export function cleanEnv(extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) {
    if ((/^npm_/i.test(k) && !KEEP_NPM_CONFIG.test(k)) || k === 'NODE_OPTIONS' || k === 'INIT_CWD') continue;
    env[k] = v;
  }
  return { ...env, ...extra };
}

/** The result of a child process, with its output as text. */
export interface Ran {
  status: number | null;
  stdout: string;
  stderr: string;
  /** Seconds. */
  seconds: number;
}

/** Runs a command without a shell; never throws on a non-zero exit (see {@link check}). */
export function run(command: string, args: string[], options: { cwd: string; env?: NodeJS.ProcessEnv; timeoutMs?: number }): Ran {
  const t0 = performance.now();
  const r: SpawnSyncReturns<string> = spawnSync(command, args, {
    cwd: options.cwd, env: options.env ?? cleanEnv(), encoding: 'utf8', timeout: options.timeoutMs ?? 300_000, maxBuffer: 64 << 20,
  });
  if (r.error) throw new Error(`${command} ${args.join(' ')}: ${r.error.message}`);
  return { status: r.status, stdout: r.stdout, stderr: r.stderr, seconds: (performance.now() - t0) / 1000 };
}

/** Throws with the command, its exit code and the end of its output unless it exited 0. */
export function check(r: Ran, what: string): Ran {
  if (r.status !== 0) {
    const tail = (s: string) => s.trim().split('\n').slice(-40).join('\n');
    throw new Error(`${what} failed (exit ${r.status}):\n--- stdout\n${tail(r.stdout)}\n--- stderr\n${tail(r.stderr)}`);
  }
  return r;
}

/** The npm version, or undefined when npm cannot be run. */
export function npmVersion(): string | undefined {
  try {
    const r = spawnSync('npm', ['--version'], { encoding: 'utf8', env: cleanEnv(), timeout: 60_000 });
    return r.status === 0 ? r.stdout.trim() : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Builds the named packages (and what they reference) to their dist/ with `tsc -b`, incrementally:
 * nothing is rebuilt when dist/ is up to date with src/.
 * @throws Error with tsc's diagnostics when the build fails.
 */
export function buildPackages(names: string[], root = repoRoot()): Ran {
  const pkgs = workspacePackages(root);
  const dirs = names.map((n) => {
    const p = pkgs.get(n);
    if (!p) throw new Error(`${n} is not a package of the workspace`);
    if (!p.built) throw new Error(`${n} has no tsconfig.json to build`);
    return p.dir;
  });
  const tsc = createRequire(join(root, 'package.json')).resolve('typescript/bin/tsc');
  return check(run(process.execPath, [tsc, '-b', ...dirs], { cwd: root }), `tsc -b ${names.join(' ')}`);
}

/** One tarball written by `npm pack`. */
export interface Tarball {
  name: string;
  version: string;
  /** Absolute path of the .tgz. */
  file: string;
  /** Bytes, compressed. */
  size: number;
  /** Bytes, unpacked. */
  unpackedSize: number;
  /** Paths inside the package (without the `package/` prefix). */
  files: string[];
}

/**
 * `npm pack`s the named workspace packages into `dest` (their prepack scripts run, as on publish).
 * @returns one entry per package, in the order given.
 */
export function packPackages(names: string[], dest: string, root = repoRoot()): Tarball[] {
  const args = ['pack', '--json', '--pack-destination', dest, ...names.flatMap((n) => ['-w', n])];
  const r = check(run('npm', args, { cwd: root }), `npm ${args.join(' ')}`);
  // Lifecycle scripts may print before the JSON array.
  const json = JSON.parse(r.stdout.slice(r.stdout.indexOf('\n[') + 1 || r.stdout.indexOf('[')));
  const byName = new Map<string, Tarball>(json.map((p: any) => [p.name, {
    name: p.name, version: p.version, file: join(dest, p.filename), size: p.size, unpackedSize: p.unpackedSize, files: p.files.map((f: any) => f.path),
  }]));
  return names.map((n) => {
    const t = byName.get(n);
    if (!t) throw new Error(`npm pack wrote no tarball for ${n}`);
    return t;
  });
}

/** How {@link installTarballs} got the third-party packages. */
export type InstallMode = 'offline' | 'prefer-offline';

/**
 * Creates `dir/package.json` for an empty ESM project, with the workspace's `overrides` (they pin
 * around packages the registry cannot serve, see shared/reference/stack-notes.md), and installs
 * the tarballs there. Tries `--offline` first (the npm cache holds every third-party package the
 * workspace installed, but not always their registry metadata); falls back to `--prefer-offline`,
 * which asks the registry only for what the cache lacks.
 * @throws Error with npm's output when both attempts fail.
 */
export function installTarballs(dir: string, tarballs: Tarball[], root = repoRoot()): { mode: InstallMode; seconds: number; firstError?: string } {
  const overrides = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')).overrides;
  writeFileSync(join(dir, 'package.json'), JSON.stringify({ name: 'peftkit-packed-project', private: true, type: 'module', ...(overrides ? { overrides } : {}) }, null, 2) + '\n');
  const base = ['install', '--no-audit', '--no-fund', '--ignore-scripts', '--no-package-lock', ...tarballs.map((t) => resolve(t.file))];
  const offline = run('npm', [...base, '--offline'], { cwd: dir });
  if (offline.status === 0) return { mode: 'offline', seconds: offline.seconds };
  const firstError = (offline.stderr || offline.stdout).trim().split('\n').filter((l) => /error/i.test(l)).slice(0, 3).join(' | ');
  const online = check(run('npm', [...base, '--prefer-offline'], { cwd: dir }), `npm install (after --offline failed: ${firstError})`);
  return { mode: 'prefer-offline', seconds: offline.seconds + online.seconds, firstError };
}
