/**
 * Runs a Node.js child process and measures its peak memory: the child reports its own
 * `process.resourceUsage().maxRSS` at exit (preloaded tools/compare/max-rss.mjs), and the parent
 * polls `VmHWM` (the kernel's resident-set high-water mark) in /proc/<pid>/status every
 * `pollMs` milliseconds as a fallback for a child killed before it could report.
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, type WriteStream } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** What a measured child did. */
export interface MeasuredRun {
  /** Exit code (null when killed by a signal). */
  code: number | null;
  /** Peak resident set size in bytes: the larger of the child's maxRSS and the polled VmHWM. */
  peakRssBytes: number;
  /** The child's own `maxRSS`, in bytes; null when it could not report (killed). */
  reportedMaxRssBytes: number | null;
  /** Largest VmHWM seen while polling, in bytes (0 where /proc is missing). */
  polledHwmBytes: number;
  /** Wall seconds from spawn to exit. */
  wallSeconds: number;
  /** stdout and stderr together, as the child wrote them. */
  output: string;
}

/** Options of {@link runMeasured}. */
export interface RunMeasuredOptions {
  cwd: string;
  env?: NodeJS.ProcessEnv;
  /** Polling interval of /proc/<pid>/status, in milliseconds (default 200). */
  pollMs?: number;
  /** Where the child's output is also copied as it arrives. */
  tee?: WriteStream | NodeJS.WriteStream;
}

const PRELOAD = fileURLToPath(new URL('./max-rss.mjs', import.meta.url));

/** `VmHWM` of /proc/<pid>/status in bytes; 0 when the process is gone or /proc is missing. */
export function readVmHwmBytes(pid: number): number {
  try {
    const m = /^VmHWM:\s+(\d+)\s+kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) * 1024 : 0;
  } catch {
    return 0;
  }
}

/**
 * Runs `node [--import max-rss.mjs] ...args` and resolves when it exits.
 * @param args - the arguments after the Node.js executable (script and its arguments; Node flags first).
 */
export function runMeasured(args: string[], opts: RunMeasuredOptions): Promise<MeasuredRun> {
  const dir = mkdtempSync(join(tmpdir(), 'peftkit-rss-'));
  const rssFile = join(dir, 'max-rss.json');
  const t0 = performance.now();
  const child = spawn(process.execPath, ['--import', PRELOAD, ...args], {
    cwd: opts.cwd,
    env: { ...process.env, ...opts.env, PEFTKIT_MAX_RSS_FILE: rssFile },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let polled = 0;
  const poll = () => {
    if (child.pid) polled = Math.max(polled, readVmHwmBytes(child.pid));
  };
  const timer = setInterval(poll, opts.pollMs ?? 200);
  let output = '';
  const take = (b: Buffer) => {
    output += b.toString('utf8');
    opts.tee?.write(b);
  };
  child.stdout.on('data', take);
  child.stderr.on('data', take);
  return new Promise((resolvePromise, reject) => {
    child.on('error', (e) => {
      clearInterval(timer);
      rmSync(dir, { recursive: true, force: true });
      reject(e);
    });
    child.on('close', (code) => {
      clearInterval(timer);
      const wallSeconds = (performance.now() - t0) / 1000;
      let reported: number | null = null;
      if (existsSync(rssFile)) reported = Number((JSON.parse(readFileSync(rssFile, 'utf8')) as { maxRSS_kib: number }).maxRSS_kib) * 1024;
      rmSync(dir, { recursive: true, force: true });
      resolvePromise({ code, peakRssBytes: Math.max(reported ?? 0, polled), reportedMaxRssBytes: reported, polledHwmBytes: polled, wallSeconds, output });
    });
  });
}
